"""The whole pipeline on tiny data, run twice: through the TFX CLI, then in-process.

Run 1 goes the README's way (`tfx pipeline create` + `tfx run create` with
the Beam engine) with MirroredStrategy over 2 logical CPU replicas, and must
push a model. Run 2 trains a deliberately broken model through BeamDagRunner
directly; it must not be blessed and must leave the serving directory as it was.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from imagedata.records import read_records, to_example
from imagedata.sample import DEFAULT_CLASSES
from pipeline.cli import LOCAL_RUNNER
from pipeline.config import load_config, to_env
from pipeline.pipeline import create_pipeline
from pipeline.report import outcome_of
from pipeline.runs import latest_run
from trainer.export import (
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    SERVING_DEFAULT,
    SERVING_IMAGES,
)

pytestmark = pytest.mark.e2e

NODES = {
    "ImportExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
}


def _settings(sample_data, backbone_weights, output_dir) -> dict:
    return {
        "output_dir": output_dir,
        "data.root": sample_data,
        "model.base_model": "MobileNetV2",
        "model.alpha": 0.35,
        "model.image_size": 64,
        "model.weights": backbone_weights,
        "training.batch_size": 16,
        "training.phase1_epochs": 6,
        "training.phase2_epochs": 3,
        "training.phase2_learning_rate": 3e-4,
        "training.fine_tune_layers": 100,
        "training.cpu_replicas": 2,
        "evaluation.min_accuracy": 0.35,
    }


def _run_through_tfx_cli(settings: dict, log_path: Path) -> None:
    config = load_config(settings, environ={})
    env = dict(os.environ, BEAM_HOME=config.tfx_home)
    env.update(to_env(name, str(value)) for name, value in settings.items())
    tfx = str(Path(sys.executable).with_name("tfx"))
    with open(log_path, "w") as log:
        for command in (
            [tfx, "pipeline", "create", "--engine", "beam", "--pipeline_path", str(LOCAL_RUNNER)],
            [tfx, "run", "create", "--engine", "beam", "--pipeline_name", config.pipeline_name],
        ):
            result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                tail = log_path.read_text()[-4000:]
                pytest.fail(f"{' '.join(command[1:3])} failed:\n{tail}")


def _tree_digest(root: str) -> dict[str, str]:
    digest = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                digest[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def runs(sample_data, backbone_weights, tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("pipeline_output"))
    settings = _settings(sample_data, backbone_weights, output_dir)
    config = load_config(settings, environ={})

    _run_through_tfx_cli(settings, Path(output_dir) / "cli_run.log")
    first = latest_run(config.metadata_path, config.pipeline_name)
    serving_after_first = _tree_digest(config.serving_root)

    broken = load_config(
        {**settings, "training.phase1_learning_rate": 1e-9, "training.phase2_epochs": 0},
        environ={},
    )
    BeamDagRunner().run(create_pipeline(broken))
    second = latest_run(config.metadata_path, config.pipeline_name)
    return {
        "config": config,
        "first": first,
        "second": second,
        "serving_after_first": serving_after_first,
        "serving_after_second": _tree_digest(config.serving_root),
    }


def test_the_cli_run_executes_every_component(runs):
    nodes = runs["first"].nodes
    assert set(nodes) == NODES
    assert {node.state for node in nodes.values()} == {"COMPLETE"}


def test_training_used_two_replicas_and_both_phases(runs):
    summary = outcome_of(runs["first"]).training
    assert summary["strategy"] == "MirroredStrategy"
    assert summary["num_replicas"] == 2
    assert summary["global_batch_size"] == 32
    assert [p["name"] for p in summary["phases"]] == ["feature_extraction", "fine_tuning"]
    assert [p["epochs"] for p in summary["phases"]] == [list(range(6)), [6, 7, 8]]
    assert summary["class_names"] == list(DEFAULT_CLASSES)


def test_the_first_model_is_blessed_and_pushed_where_tf_serving_looks(runs):
    outcome = outcome_of(runs["first"])
    assert outcome.blessed
    assert outcome.accuracy >= 0.35
    assert outcome.example_count == 16 * len(DEFAULT_CLASSES)
    assert outcome.baseline_accuracy is None
    pushed = Path(outcome.pushed_to)
    assert pushed.parent == Path(runs["config"].serving_model_dir)
    assert pushed.name.isdigit()
    assert (pushed / "saved_model.pb").exists()
    assert (pushed / "assets" / "labels.txt").read_text().split() == list(DEFAULT_CLASSES)


def test_the_pushed_model_predicts_through_both_signatures(runs, sample_data):
    pushed = outcome_of(runs["first"]).pushed_to
    records = list(read_records(f"{sample_data}/eval/*"))
    model = tf.saved_model.load(pushed)
    by_image = model.signatures[SERVING_IMAGES](
        **{IMAGES_INPUT: tf.constant([r.image for r in records])}
    )
    by_example = model.signatures[SERVING_DEFAULT](
        **{EXAMPLES_INPUT: tf.constant([to_example(r).SerializeToString() for r in records])}
    )
    np.testing.assert_allclose(
        by_image["probabilities"].numpy(), by_example["probabilities"].numpy(), atol=1e-6
    )
    predicted = by_image["class_ids"].numpy()
    accuracy = np.mean(predicted == np.array([r.label for r in records]))
    assert accuracy == pytest.approx(outcome_of(runs["first"]).accuracy, abs=1e-6)


def test_a_worse_model_is_not_blessed_and_serving_is_untouched(runs):
    second = runs["second"]
    assert second.run_id != runs["first"].run_id
    assert second.nodes["Trainer"].state == "COMPLETE"
    outcome = outcome_of(second)
    assert outcome.blessed is False
    assert outcome.baseline_accuracy == pytest.approx(outcome_of(runs["first"]).accuracy)
    assert outcome.accuracy < outcome.baseline_accuracy
    change = outcome.accuracy - outcome.baseline_accuracy
    assert set(outcome.failures) == {
        f"sparse_categorical_accuracy changed by {change:+.3f}"
        " against the last blessed model; the required change is +0.000 or more",
        f"sparse_categorical_accuracy {outcome.accuracy:.3f} is below the minimum 0.350",
    }
    assert outcome.pushed_to is None
    assert second.nodes["Pusher"].output("pushed_model").properties["pushed"] == 0
    assert runs["serving_after_second"] == runs["serving_after_first"]
