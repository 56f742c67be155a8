from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from imgclf.components.example_gen import import_example_gen
from imgclf.imagedata.records import read_records
from imgclf.imagedata.sample import write_sample_span
from imgclf.imagedata.spans import input_splits
from imgclf.pipeline.runs import latest_run
from imgclf.settings.data import DataConfig


def _run_example_gen(tmp_path, data: DataConfig, **spans):
    """ExampleGen alone, run by TFX's Beam runner; returns its Examples artifact."""
    example_gen = import_example_gen(data.root, tfx.proto.Input(splits=input_splits(data)), **spans)
    metadata = str(tmp_path / "metadata.db")
    BeamDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="spans",
            pipeline_root=str(tmp_path / "root"),
            components=[example_gen],
            metadata_connection_config=(
                tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata)
            ),
        )
    )
    return latest_run(metadata, "spans").nodes["ImportExampleGen"].output("examples")


def test_a_rolling_window_reads_the_newest_spans_or_those_before_a_backfill(tmp_path):
    root = str(tmp_path / "data")
    for span in (1, 2, 3):
        write_sample_span(root, span, train_per_class=2, eval_per_class=1, num_shards=1)
    data = DataConfig(
        root=root, train_pattern="span-{SPAN}/train/*", eval_pattern="span-{SPAN}/eval/*"
    )

    def images(pattern):
        return sorted(record.image for record in read_records(pattern))

    window = _run_example_gen(tmp_path, data, rolling_spans=2)
    assert window.properties["span"] == 3
    assert window.properties["spans"] == "2,3"
    assert images(f"{window.uri}/Split-train/*") == images(f"{root}/span-[23]/train/*")

    backfill = _run_example_gen(tmp_path, data, span=1, rolling_spans=2)
    assert backfill.properties["span"] == 1
    assert backfill.properties["spans"] == "1"  # there is no span 0
    assert images(f"{backfill.uri}/Split-eval/*") == images(f"{root}/span-1/eval/*")
