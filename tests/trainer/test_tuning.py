"""The Tuner's search: each trial a two-phase run scored on validation; the best trains."""

import json
import os
import shutil

import pytest
from tfx import v1 as tfx
from tfx.components.tuner import executor as tuner_executor
from tfx.types import artifact_utils, standard_artifacts

from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.config import load_config
from imgclf.trainer.export import read_summary
from imgclf.trainer.task import run_fn

pytestmark = pytest.mark.slow

PHASE2_RATES = [1e-4, 2e-3]


def _examples(sample_data: str, root) -> standard_artifacts.Examples:
    """The sample data as ImageValidator hands it on: an Examples artifact, one folder a split."""
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        shutil.copytree(f"{sample_data}/{split}", f"{examples.uri}/Split-{split}")
    return examples


def _output(artifact_type, uri: str):
    artifact = artifact_type()
    artifact.uri = uri
    os.makedirs(uri)
    return artifact


@pytest.fixture(scope="module")
def search(sample_data, tiny_backbone, tmp_path_factory):
    """TFX's own Tuner executor, given what the pipeline's Tuner node gives it."""
    out = tmp_path_factory.mktemp("tuning")
    settings = {
        "data.root": sample_data,
        **{f"model.{k}": v for k, v in tiny_backbone.model_dump().items()},
        "training.batch_size": 16,
        "training.phase1_epochs": 1,
        "training.phase2_epochs": 1,
        "tuning.enabled": True,
        "tuning.max_trials": 2,
        "tuning.phase1_learning_rates": [1e-3],
        "tuning.phase2_learning_rates": PHASE2_RATES,
        "tuning.fine_tune_fractions": [0.5, 1.0],
        "tuning.dropouts": [0.1, 0.3],
        "serving.warmup_images": 0,
    }
    config = load_config(settings)
    [node] = [n for n in create_pipeline(config).components if n.id == "Tuner"]
    examples = _examples(sample_data, out)
    best = _output(standard_artifacts.HyperParameters, str(out / "best"))
    results = _output(standard_artifacts.TunerResults, str(out / "results"))
    executor = tuner_executor.Executor(
        tuner_executor.base_executor.BaseExecutor.Context(tmp_dir=str(out / "tmp"), unique_id="1")
    )
    executor.Do(
        {"examples": [examples]},
        {"best_hyperparameters": [best], "tuner_results": [results]},
        dict(node.exec_properties),
    )
    with open(out / "best" / "best_hyperparameters.txt") as f:
        best_config = json.load(f)
    with open(out / "results" / "tuner_results.json") as f:
        trials = json.load(f)
    # As the pipeline gives the Trainer its files: the train split, part of which validates.
    train_files = [f"{examples.uri}/Split-train/*"]
    fn_args = {
        "train_files": train_files,
        "eval_files": train_files,
        "custom_config": config.trainer_config().model_dump(mode="json"),
    }
    return best_config, trials, fn_args, out


def test_each_trial_is_a_scored_two_phase_run_within_the_search_space(search):
    best_config, trials, _, _ = search
    assert len(trials) == 2
    for trial in trials:
        assert 0.0 <= trial["score"] <= 1.0
        assert trial["phase2_learning_rate"] in PHASE2_RATES
        assert trial["fine_tune_fraction"] in (0.5, 1.0) and trial["dropout"] in (0.1, 0.3)
    # Best first; the best trial's values are the best hyperparameters.
    assert trials[0]["score"] >= trials[1]["score"]
    searched = ("phase1_learning_rate", "phase2_learning_rate", "fine_tune_fraction", "dropout")
    assert best_config["values"] == {name: trials[0][name] for name in searched}


def test_the_trainer_trains_with_the_best_values_and_records_them(search):
    best_config, _, fn_args, out = search
    run_fn(
        tfx.components.FnArgs(
            **fn_args,
            serving_model_dir=str(out / "serving"),
            model_run_dir=str(out / "model_run"),
            # As TFX's Trainer hands over the Tuner's best_hyperparameters artifact.
            hyperparameters=best_config,
        )
    )
    summary = read_summary(str(out / "serving"))
    assert summary["tuned"] == best_config["values"]
    phase1, phase2 = summary["phases"]
    assert phase1["learning_rate"] == pytest.approx(1e-3)
    assert phase2["learning_rate"] == pytest.approx(best_config["values"]["phase2_learning_rate"])
