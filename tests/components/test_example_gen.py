import gzip
import logging

import pytest
from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from bad_records import example, write_records
from imgclf.components.example_gen import (
    UnreadableInputError,
    import_example_gen,
    list_files,
    read_tfrecord_file,
)
from imgclf.imagedata.records import read_records
from imgclf.imagedata.sample import write_sample_span
from imgclf.imagedata.spans import input_splits
from imgclf.pipeline.runs import latest_run
from imgclf.settings.config import DataConfig

RECORDS = [example(b"pixels", label, f"r{label}") for label in range(3)]


@pytest.mark.parametrize("name", ["data.tfrecord", "data.tfrecord.gz"])
def test_plain_and_gzip_files_are_read_by_their_names(tmp_path, name):
    write_records(tmp_path / name, RECORDS)
    assert list(read_tfrecord_file(str(tmp_path / name))) == RECORDS


def test_a_gzip_file_not_named_gz_is_named_in_a_clear_error(tmp_path):
    path = tmp_path / "data.tfrecord"
    write_records(tmp_path / "data.tfrecord.gz", RECORDS)
    path.write_bytes((tmp_path / "data.tfrecord.gz").read_bytes())
    with pytest.raises(UnreadableInputError, match="is GZIP-compressed but its name") as raised:
        list(read_tfrecord_file(str(path)))
    assert str(path) in str(raised.value)


def test_a_plain_file_named_gz_is_named_in_a_clear_error(tmp_path):
    write_records(tmp_path / "data.tfrecord", RECORDS)
    path = tmp_path / "data.gz"
    path.write_bytes((tmp_path / "data.tfrecord").read_bytes())
    with pytest.raises(UnreadableInputError, match=r"is named \*\.gz but is not GZIP") as raised:
        list(read_tfrecord_file(str(path)))
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("name", ["data.tfrecord", "data.tfrecord.gz"])
def test_a_corrupted_record_is_named_by_file_and_index(tmp_path, name):
    write_records(tmp_path / "plain", RECORDS)
    raw = bytearray((tmp_path / "plain").read_bytes())
    second_record_data = len(RECORDS[0]) + 16 + 12  # past record 0 and record 1's header
    raw[second_record_data] ^= 0xFF
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    read = []
    with pytest.raises(UnreadableInputError) as raised:
        read.extend(read_tfrecord_file(str(path)))
    assert f"{path}: record 1 (counting from 0) cannot be read" in str(raised.value)
    assert read == RECORDS[:1]


def test_a_zero_byte_file_adds_no_records_and_is_logged_by_name(tmp_path, caplog):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert list(read_tfrecord_file(str(path))) == []
    assert str(path) in caplog.text


def test_a_pattern_that_matches_no_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file") as raised:
        list_files(str(tmp_path / "train" / "*"))
    assert str(tmp_path / "train" / "*") in str(raised.value)


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

    def images(pattern, compression=""):
        return sorted(record.image for record in read_records(pattern, compression))

    window = _run_example_gen(tmp_path, data, rolling_spans=2)
    assert window.properties["span"] == 3
    assert window.properties["spans"] == "2,3"
    assert images(f"{window.uri}/Split-train/*", "GZIP") == images(f"{root}/span-[23]/train/*")

    backfill = _run_example_gen(tmp_path, data, span=1, rolling_spans=2)
    assert backfill.properties["span"] == 1
    assert backfill.properties["spans"] == "1"  # there is no span 0
    assert images(f"{backfill.uri}/Split-eval/*", "GZIP") == images(f"{root}/span-1/eval/*")
