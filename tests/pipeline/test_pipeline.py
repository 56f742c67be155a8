"""The pipeline's wiring: which split serves which role, and what gates the push."""

import json

from tfx import v1 as tfx

from imgclf.components.pusher import VersionedPusher
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.config import load_config


def _nodes(sample_data, tmp_path, check: str = "local", **settings) -> dict:
    config = load_config(
        {
            "output_dir": str(tmp_path),
            "data.root": sample_data,
            "model.base_model": "MobileNetV2",
            "model.alpha": 0.35,
            "model.image_size": 32,
            "model.weights": "none",
            "serving.check": check,
            **settings,
        }
    )
    return {node.id: node for node in create_pipeline(config).components}


def _splits(node, key: str) -> list[str]:
    """The splits of a TrainArgs or EvalArgs execution property (a JSON proto)."""
    return json.loads(node.exec_properties[key]).get("splits", [])


def test_the_trainer_validates_on_train_and_only_the_evaluator_reads_the_test_split(
    sample_data, tmp_path
):
    nodes = _nodes(sample_data, tmp_path)
    # The Trainer's eval files are the train split again: it holds part of them out.
    assert _splits(nodes["Trainer"], "train_args") == ["train"]
    assert _splits(nodes["Trainer"], "eval_args") == ["train"]
    assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]


def test_a_validation_split_of_its_own_is_ingested_and_validated_on(sample_data, tmp_path):
    nodes = _nodes(sample_data, tmp_path, **{"data.validation_pattern": "eval/*"})
    ingested = json.loads(nodes["ImportExampleGen"].exec_properties["input_config"])
    assert [split["name"] for split in ingested["splits"]] == ["train", "eval", "validation"]
    assert _splits(nodes["Trainer"], "eval_args") == ["validation"]
    assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]


def _pusher_checked_by(nodes: dict):
    pusher = nodes["Pusher"]
    assert isinstance(pusher, VersionedPusher)
    blessing = pusher.inputs.get("infra_blessing")
    return blessing.producer_component_id if blessing is not None else None


def test_by_default_the_local_serving_check_gates_the_push(sample_data, tmp_path):
    nodes = _nodes(sample_data, tmp_path, "local")
    assert type(nodes["ServingCheck"]).__name__ == "ServingCheck"
    assert nodes["ServingCheck"].exec_properties["timeout_seconds"] == 300.0
    assert _pusher_checked_by(nodes) == "ServingCheck"


def test_tfx_infra_validator_runs_tf_serving_in_docker_when_chosen(sample_data, tmp_path):
    nodes = _nodes(sample_data, tmp_path, "infra_validator")
    validator = nodes["ServingCheck"]
    assert isinstance(validator, tfx.components.InfraValidator)
    serving_spec = json.loads(validator.exec_properties["serving_spec"])
    assert serving_spec == {
        "tensorflow_serving": {"image_name": "tensorflow/serving", "tags": ["2.16.1"]},
        "local_docker": {},
    }
    assert validator.inputs["examples"].producer_component_id == "ImageValidator"
    assert _pusher_checked_by(nodes) == "ServingCheck"


def test_with_no_check_the_pusher_takes_the_evaluators_word_alone(sample_data, tmp_path):
    nodes = _nodes(sample_data, tmp_path, "none")
    assert "ServingCheck" not in nodes
    assert _pusher_checked_by(nodes) is None


def test_with_tuning_on_the_tuner_searches_on_validation_and_feeds_the_trainer(
    sample_data, tmp_path
):
    assert "Tuner" not in _nodes(sample_data, tmp_path)  # off by default
    nodes = _nodes(sample_data, tmp_path, **{"tuning.enabled": True})
    tuner = nodes["Tuner"]
    assert _splits(tuner, "train_args") == ["train"] and _splits(tuner, "eval_args") == ["train"]
    assert nodes["Trainer"].inputs["hyperparameters"].producer_component_id == "Tuner"
    assert nodes["DataGate"] in tuner.upstream_nodes  # nothing is tuned on rejected data
