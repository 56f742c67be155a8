"""The Trainer's per-run schedule: run-time values win over the compiled configuration."""

import json

import pytest
from tfx import v1 as tfx

from imgclf.components.trainer import Trainer, apply_overrides
from imgclf.settings.config import PipelineConfig, TrainerConfig


def compiled_properties(**overrides) -> dict:
    custom_config = PipelineConfig().trainer_config().model_dump(mode="json")
    return {"custom_config": json.dumps(custom_config), "run_fn": "x.run_fn", **overrides}


def test_values_given_for_the_run_replace_the_compiled_ones():
    properties = apply_overrides(
        compiled_properties(phase1_epochs=12, phase2_learning_rate=5e-5, phase2_epochs=None)
    )
    training = TrainerConfig.model_validate(json.loads(properties["custom_config"])).training
    assert training.phase1_epochs == 12
    assert training.fine_tune_learning_rate == 5e-5
    assert training.phase2_epochs == PipelineConfig().training.phase2_epochs  # not given
    assert "phase1_epochs" not in properties  # TFX's executor sees only its own properties
    assert properties["run_fn"] == "x.run_fn"


def test_an_invalid_run_time_value_is_refused_by_the_trainer_configuration():
    properties = apply_overrides(compiled_properties(phase1_epochs=0))
    with pytest.raises(ValueError, match="phase1_epochs"):
        TrainerConfig.model_validate(json.loads(properties["custom_config"]))


def test_the_schedule_takes_runtime_parameters_and_nothing_else():
    examples = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples)
    epochs = tfx.dsl.experimental.RuntimeParameter(name="phase1_epochs", ptype=int, default=3)
    trainer = Trainer(examples, "x.run_fn", {"training": {}}, schedule={"phase1_epochs": epochs})
    assert trainer.exec_properties["phase1_epochs"] is epochs
    assert trainer.id == "Trainer"
    assert set(trainer.outputs) == {"model", "model_run"}
    with pytest.raises(ValueError, match="Not settable per run"):
        Trainer(examples, "x.run_fn", {}, schedule={"batch_size": 8})
