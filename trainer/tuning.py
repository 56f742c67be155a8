"""Hyperparameter search for TFX's Tuner component, with KerasTuner.

The search covers the two phases' learning rates, how much of the base
fine-tuning unfreezes, and the head's dropout. Each trial is a whole
two-phase training run (trainer/schedule.py) on the run's own train and
validation records, with its early stopping and best-epoch rule; its score
is the validation accuracy of the weights it kept, so the test split stays
unseen here too. TFX hands the best values to the Trainer
(`fn_args.hyperparameters`), which trains once more with them
(`TrainerConfig.tuned`) and records them in its summary.

The trials run inside KerasTuner's `run_trial`, as its guide does for any
black box: KerasTuner builds its models with Keras 3, this project's are Keras 2.
"""

from __future__ import annotations

import os
import tempfile

import keras_tuner
from tfx import v1 as tfx

from imgclf.imagedata.records import read_labels
from imgclf.settings.config import TrainerConfig
from imgclf.trainer.distribution import make_strategy
from imgclf.trainer.model import build_model
from imgclf.trainer.roles import training_data
from imgclf.trainer.schedule import MONITOR, claim_work_dir, kept_epoch, train_two_phases


def declare_search_space(hp: keras_tuner.HyperParameters, config: TrainerConfig) -> None:
    tuning = config.tuning
    hp.Choice("phase1_learning_rate", tuning.phase1_learning_rates)
    hp.Choice("phase2_learning_rate", tuning.phase2_learning_rates)
    hp.Choice("fine_tune_fraction", tuning.fine_tune_fractions)
    hp.Choice("dropout", tuning.dropouts)


class TwoPhaseSearch(keras_tuner.RandomSearch):
    """Random search whose trial is the Trainer's two-phase run, scored on validation."""

    def __init__(self, config: TrainerConfig, fn_args: tfx.components.FnArgs, **kwargs):
        super().__init__(
            objective=keras_tuner.Objective(MONITOR, direction="max"),
            max_trials=config.tuning.max_trials,
            seed=config.training.seed,
            **kwargs,
        )
        self._config = config
        self._fn_args = fn_args
        self._strategy = make_strategy(config.training.cpu_replicas)
        self._class_names = read_labels(config.data.labels_path)

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        hp = trial.hyperparameters
        declare_search_space(hp, self._config)
        config = self._config.tuned(hp.values)
        global_batch_size = config.training.batch_size * self._strategy.num_replicas_in_sync
        data = training_data(self._fn_args, config, global_batch_size, len(self._class_names))
        with self._strategy.scope():
            model = build_model(
                config.model,
                num_classes=len(self._class_names),
                batch_norm_learns=config.training.fine_tune_batch_norm,
            )
        with tempfile.TemporaryDirectory() as work_dir:
            claim_work_dir(work_dir, trial.trial_id, writer=True)
            phases = train_two_phases(
                model,
                data.train,
                data.validation,
                config.training,
                self._strategy,
                work_dir,
                class_weight=data.class_weight,
            )
        return {MONITOR: kept_epoch([phase.to_dict() for phase in phases])[MONITOR]}


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX's Tuner calls this with the run's files and settings (`custom_config`)."""
    config = TrainerConfig.model_validate(fn_args.custom_config)
    search = TwoPhaseSearch(
        config,
        fn_args,
        directory=os.path.join(fn_args.working_dir, "search"),
        project_name="two_phases",
    )
    return tfx.components.TunerFnResult(tuner=search, fit_kwargs={})
