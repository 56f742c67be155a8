"""Real images prepared by someone else, in TFX's image TFRecord format, run unchanged.

The CIFAR-10 subset in ../shared/fixtures (256 PNG images, 10 classes, with an
extra `id` feature) goes through the same pipeline as the sample data.
"""

import json
import os
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from imgclf.components.evaluation import ACCURACY, TOP_K_ACCURACY
from imgclf.components.image_validator import read_report
from imgclf.components.model_report import COMPARISON_JSON
from imgclf.imagedata.records import read_labels, read_records
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.pipeline.report import outcome_of
from imgclf.pipeline.runs import latest_run
from imgclf.settings.config import load_config
from imgclf.settings.data import DataConfig
from imgclf.trainer.export import IMAGES_INPUT, SERVING_IMAGES

CIFAR10 = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "cifar10_tfx_subset"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CIFAR10.is_dir(),
        reason=f"the shared CIFAR-10 fixture is not beside the project ({CIFAR10})",
    ),
]


@pytest.fixture(scope="module")
def cifar_run(backbone_weights, tmp_path_factory):
    # The fixture folder is read-only: its curated schema is written beside the run.
    schema_path = str(tmp_path_factory.mktemp("cifar_schema") / "schema.pbtxt")
    write_schema(make_schema(DataConfig(root=str(CIFAR10))), schema_path)
    config = load_config(
        {
            "output_dir": str(tmp_path_factory.mktemp("cifar_output")),
            "data.root": str(CIFAR10),
            "data.schema_file": schema_path,
            "model.base_model": "MobileNetV2",
            "model.alpha": 0.35,
            "model.image_size": 32,
            "model.weights": backbone_weights,
            "training.phase1_epochs": 2,
            "training.phase2_epochs": 1,
            "training.cpu_replicas": 2,
            "evaluation.min_accuracy": 0.0,
            "evaluation.min_class_recall": 0.0,
        },
    )
    BeamDagRunner().run(create_pipeline(config))
    return latest_run(config.metadata_path, config.pipeline_name)


def test_every_component_runs_on_the_cifar10_records(cifar_run):
    assert {node.state for node in cifar_run.nodes.values()} == {"COMPLETE"}
    statistics = cifar_run.nodes["StatisticsGen"].output("statistics").uri
    for split in ("train", "eval"):
        stats = tfdv.load_stats_binary(
            os.path.join(statistics, f"Split-{split}", "FeatureStats.pb")
        )
        assert stats.datasets[0].num_examples == 128
    report = read_report(cifar_run.nodes["ImageValidator"].output("report").uri)
    assert report["passed"]
    assert report["warnings"] == []
    assert {split: values["good"] for split, values in report["splits"].items()} == {
        "train": 128,
        "eval": 128,
    }


def test_the_model_learns_the_ten_cifar_classes_and_is_pushed(cifar_run):
    class_names = read_labels(str(CIFAR10 / "labels.txt"))
    outcome = outcome_of(cifar_run)
    assert outcome.training["class_names"] == class_names
    assert outcome.example_count == 128
    assert outcome.pushed_to

    records = list(read_records(str(CIFAR10 / "eval" / "*")))[:8]
    served = tf.saved_model.load(outcome.pushed_to).signatures[SERVING_IMAGES]
    outputs = served(**{IMAGES_INPUT: tf.constant([r.image for r in records])})
    assert outputs["probabilities"].shape == (8, 10)
    assert {name.decode() for name in outputs["class_names"].numpy()} <= set(class_names)


def test_with_ten_classes_the_evaluation_reports_top_5_accuracy(cifar_run):
    report = cifar_run.nodes["ModelReport"].output("report").uri
    with open(os.path.join(report, COMPARISON_JSON)) as f:
        metrics = {row["metric"]: row["candidate"] for row in json.load(f)["metrics"]}
    assert metrics[TOP_K_ACCURACY] >= metrics[ACCURACY]
    assert set(metrics) >= {f"recall[{name}]" for name in read_labels(str(CIFAR10 / "labels.txt"))}
