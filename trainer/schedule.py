"""The training schedule: feature extraction, then fine-tuning, as one run of epochs.

Phase 1 trains only the new head on top of the frozen base. Phase 2 unfreezes
the top of the base and continues at a lower learning rate, so the head's
large early gradients never reach (and wreck) the pretrained weights. Epoch
numbers run on from phase 1 into phase 2 (`initial_epoch`), so logs,
callbacks and schedules see one continuous run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.config import TrainingConfig
from trainer.model import compile_model, unfreeze_top

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNING = "fine_tuning"


@dataclass
class PhaseResult:
    name: str
    learning_rate: float
    epochs: list[int]
    trainable_params: int
    history: dict[str, list[float]]

    def to_dict(self) -> dict:
        return asdict(self)


def train_two_phases(
    model: keras.Model,
    train_data: tf.data.Dataset,
    eval_data: tf.data.Dataset,
    config: TrainingConfig,
    strategy: tf.distribute.Strategy,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> list[PhaseResult]:
    """Runs phase 1 and, unless switched off, phase 2 on `model` in place.

    `callbacks` see both phases, as one run of epochs.
    """
    callbacks = callbacks or []
    with strategy.scope():
        compile_model(model, config.phase1_learning_rate)
    phases = [
        _fit(
            model,
            FEATURE_EXTRACTION,
            train_data,
            eval_data,
            callbacks,
            first_epoch=0,
            num_epochs=config.phase1_epochs,
        )
    ]
    if config.phase2_epochs:
        with strategy.scope():
            unfreeze_top(model, config.fine_tune_layers)
            compile_model(model, config.fine_tune_learning_rate)
        epochs_done = len(phases[0].epochs)
        phases.append(
            _fit(
                model,
                FINE_TUNING,
                train_data,
                eval_data,
                callbacks,
                first_epoch=epochs_done,
                num_epochs=config.phase2_epochs,
            )
        )
    return phases


def _fit(model, name, train_data, eval_data, callbacks, first_epoch, num_epochs) -> PhaseResult:
    history = model.fit(
        train_data,
        validation_data=eval_data,
        callbacks=callbacks,
        initial_epoch=first_epoch,
        epochs=first_epoch + num_epochs,
        verbose=2,
    )
    return PhaseResult(
        name=name,
        # Read back from the optimizer: what was used, not what was asked for.
        learning_rate=float(keras.backend.get_value(model.optimizer.learning_rate)),
        epochs=list(history.epoch),
        trainable_params=count_params(model.trainable_weights),
        history={key: [float(v) for v in values] for key, values in history.history.items()},
    )


def count_params(weights: list[tf.Variable]) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
