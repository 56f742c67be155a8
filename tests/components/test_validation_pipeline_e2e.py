"""The pipeline's data half (ingestion to the gate) on real files with every kind of bad record.

Two runs of the pipeline with `validate_only` (no Trainer and nothing after it):
- lenient: the defects, and an eval image that is also in train, are within a
  lenient policy; each is counted, listed and (the defects) left out of the
  valid examples, and the gate passes;
- strict: the same train split with one image under a second label, under the
  default policy, and an eval split that holds only a zero-byte file; the gate
  stops the run and says why.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from bad_records import defects, encode, example, good_variants, pixels, write_records
from imgclf.components.data_gate import DataValidationError
from imgclf.components.image_validator import REPORT_TEXT, read_report
from imgclf.imagedata.records import read_records
from imgclf.imagedata.sample import write_sample_dataset
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.pipeline.report import outcome_of
from imgclf.pipeline.runs import latest_run
from imgclf.settings.config import load_config
from imgclf.settings.data import DataConfig

pytestmark = pytest.mark.e2e

DATA_NODES = {
    "ImportExampleGen",
    "ImportSchemaGen",
    "ImageValidator",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "DataReport",
    "DataGate",
}
GOOD_TRAIN = 4 * 8 + len(good_variants())
BAD_TRAIN = len(defects())


def _dataset(root: str, eval_split: bool) -> str:
    """The sample shapes (8 train, 4 eval per class), plus a shard of defects and oddities."""
    write_sample_dataset(root, train_per_class=8, eval_per_class=4, image_size=32)
    write_schema(make_schema(DataConfig(root=root)), DataConfig(root=root).schema_path)
    records = list(defects().values()) + list(good_variants().values())
    write_records(os.path.join(root, "train", "odd-00000.tfrecord.gz"), records)
    open(os.path.join(root, "train", "empty.tfrecord"), "wb").close()
    if not eval_split:
        for name in os.listdir(os.path.join(root, "eval")):
            os.remove(os.path.join(root, "eval", name))
        open(os.path.join(root, "eval", "empty.tfrecord"), "wb").close()
    else:  # the train split's grayscale image, again in eval
        write_records(os.path.join(root, "eval", "leak-00000.tfrecord.gz"), [LEAK])
    return root


LEAK = example(encode(pixels(3), mode="L"), 0, "grayscale-again")
# The train split's RGBA image (label 1) under label 2.
CONFLICT = example(encode(pixels(4), mode="RGBA"), 2, "rgba-as-class-2")


def _run_data_half(root: str, output_dir: str, settings: dict):
    """Runs the pipeline's components up to the gate; returns the run and any error."""
    config = load_config({"output_dir": output_dir, "data.root": root, **settings})
    error = None
    try:
        BeamDagRunner().run(create_pipeline(config, validate_only=True))
    except DataValidationError as raised:
        error = raised
    return latest_run(config.metadata_path, config.pipeline_name), error


LENIENT = {"validation.max_bad_fraction": 0.25, "validation.max_split_overlap": 0.1}


@pytest.fixture(scope="module")
def lenient_data(tmp_path_factory):
    return _dataset(str(tmp_path_factory.mktemp("lenient") / "data"), eval_split=True)


@pytest.fixture(scope="module")
def lenient(lenient_data, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("lenient_output"))
    run, error = _run_data_half(lenient_data, output_dir, LENIENT)
    assert error is None
    return run


def _require_feature(schema_path: str, name: str) -> None:
    """Tightens the curated schema, as a user may: every record must have `name`."""
    schema = tfdv.load_schema_text(schema_path)
    schema.feature.add(name=name, type=schema_pb2.BYTES).presence.min_fraction = 1.0
    tfdv.write_schema_text(schema, schema_path)


@pytest.fixture(scope="module")
def strict_data(tmp_path_factory):
    root = _dataset(str(tmp_path_factory.mktemp("strict") / "data"), eval_split=False)
    write_records(os.path.join(root, "train", "conflict-00000.tfrecord.gz"), [CONFLICT])
    _require_feature(DataConfig(root=root).schema_path, "photographer")
    return root


@pytest.fixture(scope="module")
def strict(strict_data, tmp_path_factory):
    return _run_data_half(strict_data, str(tmp_path_factory.mktemp("strict_output")), {})


def test_within_policy_every_record_is_counted_and_the_gate_passes(lenient):
    assert set(lenient.nodes) == DATA_NODES
    assert {node.state for node in lenient.nodes.values()} == {"COMPLETE"}
    report = read_report(lenient.nodes["ImageValidator"].output("report").uri)
    assert report["passed"]
    train = report["splits"]["train"]
    assert (train["total"], train["good"]) == (GOOD_TRAIN + BAD_TRAIN, GOOD_TRAIN)
    assert sorted(record["id"] for record in train["bad"]) == sorted(defects())
    assert all(record["location"].startswith("train/") for record in train["bad"])
    assert train["problems"] == {
        "label out of range": 1,
        "no image": 1,
        "no label": 1,
        "undecodable image": 3,
        "wrong type": 1,
    }
    # Grayscale and RGBA files are good images; the model decodes them to 3 channels.
    assert train["channels"] == {"1": 1, "3": 32, "4": 1}
    assert train["labels"] == {"0": 9, "1": 9, "2": 8, "3": 8}
    assert (train["min_height"], train["max_height"]) == (32, 32)
    assert report["splits"]["eval"]["good"] == 17
    # Within the allowed overlap: counted, named, and kept.
    assert report["duplicates"]["also_in_train"] == {"eval": 1}
    [[eval_copy, train_copy]] = report["duplicates"]["groups"]
    assert (eval_copy[0], eval_copy[3], train_copy[0], train_copy[3]) == (
        "eval",
        "grayscale-again",
        "train",
        "grayscale",
    )
    assert lenient.nodes["DataGate"].output("result").properties["passed"] == 1


def test_the_valid_examples_hold_exactly_the_good_records(lenient):
    valid = lenient.nodes["ImageValidator"].output("valid_examples").uri
    kept = list(read_records(os.path.join(valid, "Split-train", "*")))
    assert len(kept) == GOOD_TRAIN
    assert not {record.id for record in kept} & set(defects())
    statistics = lenient.nodes["StatisticsGen"].output("statistics").uri
    stats = tfdv.load_stats_binary(os.path.join(statistics, "Split-train", "FeatureStats.pb"))
    assert stats.datasets[0].num_examples == GOOD_TRAIN


def test_the_gate_measures_label_drift_between_train_and_eval(lenient):
    result = lenient.nodes["DataGate"].output("result").uri
    text = tf.io.gfile.GFile(os.path.join(result, "gate.txt")).read()
    assert text.startswith("Data validation: PASSED")
    # train holds 9/34 of class 0, eval 5/17: the largest share gap.
    assert f"label drift train -> eval: {5 / 17 - 9 / 34:.3f}" in text


@pytest.fixture(scope="module")
def lenient_on_the_portable_path(lenient_data, tmp_path_factory, portable_beam):
    output_dir = str(tmp_path_factory.mktemp("lenient_portable_output"))
    settings = {**LENIENT, "beam": portable_beam.model_dump()}
    run, error = _run_data_half(lenient_data, output_dir, settings)
    assert error is None
    return run


def _serialized(pattern: str) -> list[bytes]:
    """The records of an Examples split, in a fixed order (a runner's shards may differ)."""
    files = tf.io.gfile.glob(pattern)
    return sorted(r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _split_outputs(run, node: str, output: str) -> dict[str, str]:
    uri = run.nodes[node].output(output).uri
    return {name: os.path.join(uri, name) for name in sorted(os.listdir(uri))}


def test_on_beams_portable_path_the_data_steps_give_the_direct_runners_outputs(
    lenient, lenient_on_the_portable_path
):
    """ImportExampleGen, the ImageValidator's DoFns and StatisticsGen, pickled into SDK
    workers of their own through Beam's job service, against the in-process DirectRunner."""
    portable = lenient_on_the_portable_path
    assert {node.state for node in portable.nodes.values()} == {"COMPLETE"}
    assert read_report(portable.nodes["ImageValidator"].output("report").uri) == read_report(
        lenient.nodes["ImageValidator"].output("report").uri
    )
    for node, output in (("ImportExampleGen", "examples"), ("ImageValidator", "valid_examples")):
        splits = [_split_outputs(run, node, output) for run in (lenient, portable)]
        assert splits[0].keys() == splits[1].keys() == {"Split-eval", "Split-train"}
        for split in splits[0]:
            direct, on_workers = (_serialized(os.path.join(s[split], "*")) for s in splits)
            assert on_workers == direct and direct
    statistics = [_split_outputs(run, "StatisticsGen", "statistics") for run in (lenient, portable)]
    for split in statistics[0]:
        direct, on_workers = (
            tfdv.load_stats_binary(os.path.join(s[split], "FeatureStats.pb")) for s in statistics
        )
        assert on_workers == direct
    assert portable.nodes["DataGate"].output("result").properties["passed"] == 1


def test_beyond_policy_and_with_an_empty_split_the_gate_stops_the_run(strict):
    run, error = strict
    assert error is not None
    assert run.nodes["DataGate"].state == "FAILED"
    assert run.nodes["ImageValidator"].output("report").properties["passed"] == 0
    message = str(error)
    assert message.startswith("The data failed validation; nothing was trained or pushed.")
    assert "FAIL: eval: the split holds no records" in message
    assert f"FAIL: train: {BAD_TRAIN} of {GOOD_TRAIN + 1 + BAD_TRAIN} records are bad" in message
    assert "FAIL: Images under two labels (the same pixels in two classes): 1," in message
    assert "rgba at train/" in message and "rgba-as-class-2 at train/" in message
    for name in defects():
        assert f"bad: {name} at train/" in message
    report_file = os.path.join(run.nodes["ImageValidator"].output("report").uri, REPORT_TEXT)
    assert f"(This report: {report_file})" in message
    assert "FAIL: train: feature 'photographer': " in message


def test_the_run_report_says_why_the_data_was_rejected(strict):
    run, _ = strict
    text = outcome_of(run).describe(min_accuracy=0.5)
    assert "The data failed validation: nothing was trained or pushed." in text
    assert "Schema anomaly: train: feature 'photographer': " in text
    assert "FAIL: eval: the split holds no records" in text
    assert "bad: label-as-bytes at train/" in text


def _imgclf_validate(root: str, output_dir, settings: dict) -> subprocess.CompletedProcess:
    assignments = {"data.root": root, "output_dir": str(output_dir), **settings}
    command = [str(Path(sys.executable).with_name("imgclf")), "validate"]
    for name, value in assignments.items():
        command += ["--set", f"{name}={value}"]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))


def _data_page(output: str) -> str:
    """The web page whose path the command printed."""
    [path] = re.findall(r"^Data report \(a web page\): (.+)$", output, re.MULTILINE)
    return Path(path).read_text()


def test_imgclf_validate_prints_the_reports_and_exits_0_on_good_data(lenient_data, tmp_path):
    result = _imgclf_validate(lenient_data, tmp_path, LENIENT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("Data validation: PASSED\n")
    assert "Image validation: PASSED" in result.stdout
    assert f"train: {GOOD_TRAIN + BAD_TRAIN} records, {GOOD_TRAIN} good" in result.stdout
    assert (tmp_path / "metadata" / "image-classifier-validation.db").exists()
    page = _data_page(result.stdout)
    assert "Passed: training may use this data." in page
    assert "Images found more than once (the same pixels): 1;" in page


def test_imgclf_validate_exits_1_with_the_problems_on_bad_data(strict_data, tmp_path):
    result = _imgclf_validate(strict_data, tmp_path, {})
    assert result.returncode == 1
    # The report once, as the command's answer: no traceback, no copies in the log.
    assert result.stderr.count("The data failed validation; nothing was trained or pushed.") == 1
    assert "Traceback" not in result.stderr
    assert "FAIL: eval: the split holds no records" in result.stderr
    # The page was written before the gate stopped the run.
    assert "Rejected: nothing is trained on this data." in _data_page(result.stderr)
