"""The training schedule: feature extraction, then fine-tuning, as one run of epochs.

Phase 1 trains only the new head on top of the frozen base. Phase 2 starts
from phase 1's best weights, unfreezes the top of the base and continues at a
lower learning rate (warmed up, then decayed along a cosine), so the head's
large early gradients never reach (and wreck) the pretrained weights. Epoch
numbers run on from phase 1 into phase 2 (`initial_epoch`), so logs,
callbacks and schedules see one continuous run.

Each phase's epochs are a maximum: a phase ends early once the validation
score has not improved for `early_stopping_patience` epochs, and the model
leaves each phase with the weights of its best epoch. Fine-tuning has to beat
phase 1's best to count: if no epoch does, the model keeps phase 1's weights.
The score is the validation accuracy with the validation loss breaking ties
(`validation_score`): on a small validation share the accuracy soon stops moving
(18 images reach 1.000 in a few epochs), while the loss still tells a model that
is surely right from one that is barely right. Early stopping asks for more:
at equal accuracy, a loss at least MIN_LOSS_GAIN lower, or a saturated run
would train every epoch it may while its loss creeps from 0.0005 to 0.0004.

A trainer that is killed (a preempted node, a crashed pod) and started again
with the same work directory resumes in the phase it was in, at the epoch
after the last one it finished: each phase keeps a BackupAndRestore
checkpoint, and `progress.json` records finished epochs and phases. Only the
same run resumes: the work directory records the identity of the run it
belongs to (`claim_work_dir`), and another run's state is discarded.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
from absl import logging

from imgclf.settings.training import MIN_LOSS_GAIN, TrainingConfig
from imgclf.trainer.data import Input
from imgclf.trainer.distribution import is_chief
from imgclf.trainer.features import CachedPhase1
from imgclf.trainer.legacy_keras import keras
from imgclf.trainer.model import WEIGHTED_LOSS, base_of, compile_model, unfreeze_top

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNING = "fine_tuning"
ACCURACY, LOSS = "val_accuracy", "val_loss"
# What picks each phase's best epoch and stops it early (validation_score).
MONITOR = "val_score"
# The loss's weight in the score: below any accuracy step (1 / images) of a validation set
# under a billion images, so it only ever breaks ties.
TIE_BREAK = 1e-9
PROGRESS_FILE = "progress.json"
IDENTITY_FILE = "identity.txt"


@dataclass
class PhaseResult:
    name: str
    learning_rate: float  # the phase's constant rate, or its schedule's peak
    epochs: list[int]
    trainable_params: int
    history: dict[str, list[float]]
    images_per_second: float
    best_epoch: int | None = None  # None: no epoch beat the weights the phase started from
    max_epochs: int | None = None
    feature_cache_seconds: float | None = None  # phase 1 on cached features: their cost

    def to_dict(self) -> dict:
        return asdict(self)


def train_two_phases(
    model: keras.Model,
    train: Input,
    evals: Input,
    config: TrainingConfig,
    strategy: tf.distribute.Strategy,
    work_dir: str,
    log_dirs: Sequence[str] = (),
    callbacks: list[keras.callbacks.Callback] | None = None,
    cache_phase1: Callable[[], CachedPhase1] | None = None,
    class_weight: dict[int, float] | None = None,
) -> list[PhaseResult]:
    """Runs phase 1 and, unless switched off, phase 2 on `model` in place.

    `evals` is the validation data: it picks each phase's best epoch and stops
    it early. `work_dir` holds the checkpoints that make the run resumable; the
    caller removes it once the model is safely exported. TensorBoard logs of
    both phases go to each of `log_dirs`. `callbacks` see both phases, as one run of
    epochs. With `cache_phase1`, phase 1 trains the head on the features it
    caches (trainer/features.py); it is called only if phase 1 has yet to run.
    `class_weight` weighs each class's loss (label -> weight).
    """
    progress = Progress(work_dir, writer=is_chief())
    common = list(callbacks or [])
    common += [keras.callbacks.TensorBoard(log_dir) for log_dir in log_dirs]
    fit = _PhaseFitter(progress, work_dir, config, common, class_weight)

    with strategy.scope():
        compile_model(model, config.optimizer, config.phase1_learning_rate)
    phase1 = progress.finished(FEATURE_EXTRACTION)
    if phase1 is None:
        # What phase 1 trains, and on what: the whole model on images, or its head on features.
        learner, phase1_train, phase1_evals, cache_seconds = model, train, evals, None
        if cache_phase1 is not None:
            # In scope: the head is a model of its own, and Keras distributes what is built there.
            with strategy.scope():
                cached = cache_phase1()
                compile_model(cached.head, config.optimizer, config.phase1_learning_rate)
            learner, phase1_train, phase1_evals = cached.head, cached.train, cached.evals
            cache_seconds = cached.seconds
        fit(learner, FEATURE_EXTRACTION, phase1_train, phase1_evals, first_epoch=0)
        if learner is not model:
            # A resumed run loads the whole model's weights from here: head and base.
            save_weights(model, fit.best_weights(FEATURE_EXTRACTION))
        phase1 = progress.finish(
            FEATURE_EXTRACTION,
            learner,
            config.phase1_learning_rate,
            config.phase1_epochs,
            feature_cache_seconds=cache_seconds,
        )
    else:
        logging.info(
            "Resuming after %s (epochs %s): it finished before.", phase1.name, phase1.epochs
        )
        model.load_weights(fit.best_weights(FEATURE_EXTRACTION))
    phases = [phase1]

    if config.phase2_epochs:
        with strategy.scope():
            unfreeze_top(
                model,
                config.layers_to_unfreeze(len(base_of(model).layers)),
                batch_norm=config.fine_tune_batch_norm,
            )
            compile_model(model, config.optimizer, fine_tuning_rate(config, train.steps))
        best_so_far = max(phase1.history.get(MONITOR) or [-np.inf])
        first_epoch = phase1.epochs[-1] + 1
        fit(model, FINE_TUNING, train, evals, first_epoch, floor=best_so_far)
        phases.append(
            progress.finish(
                FINE_TUNING,
                model,
                config.fine_tune_learning_rate,
                config.phase2_epochs,
                floor=best_so_far,
            )
        )
    return phases


def fine_tuning_rate(
    config: TrainingConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Phase 2's learning rate: constant, or a linear warm-up then a cosine decay to 0."""
    peak = config.fine_tune_learning_rate
    if config.phase2_schedule == "constant":
        return peak
    total = config.phase2_epochs * steps_per_epoch
    # At most all but the last epoch warms up: a decay needs at least one step.
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, total)
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, warmup_target=peak, warmup_steps=warmup
    )


def save_weights(model: keras.Model, path: str) -> None:
    """Saves on the chief, and on the other workers to scratch: saving runs collective ops."""
    if is_chief():
        model.save_weights(path)
        return
    with tempfile.TemporaryDirectory() as scratch:
        model.save_weights(os.path.join(scratch, os.path.basename(path)))


class _PhaseFitter:
    """Fits one phase: resumable, stopped early, and left with its best epoch's weights."""

    def __init__(self, progress, work_dir, config: TrainingConfig, common, class_weight):
        self._progress = progress
        self._work_dir = work_dir
        self._config = config
        self._common = common
        self._class_weight = class_weight

    def best_weights(self, phase: str) -> str:
        return os.path.join(self._work_dir, f"best_{phase}")

    def __call__(self, model, phase, train, evals, first_epoch, floor=None):
        """`floor`: the validation score an epoch must beat to be kept (phase 1's best)."""
        best = self.best_weights(phase)
        resuming = bool(self._progress.epochs_of(phase))
        if floor is not None and not resuming:
            # The weights to end with if no epoch of this phase beats the floor.
            save_weights(model, best)
        # An epoch is kept only if it beats the floor and every epoch this phase already ran.
        known = [value for value in (floor, self._progress.best_value(phase)) if value is not None]
        best_so_far = max(known) if known else None
        callbacks = [
            # First: every callback after it, and the history, see the true figures.
            *validation_figures(),
            # Restores weights, optimizer and epoch if this phase was cut short before.
            keras.callbacks.BackupAndRestore(os.path.join(self._work_dir, "backup", phase)),
            keras.callbacks.ModelCheckpoint(
                best,
                monitor=MONITOR,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far,
            ),
            *self._early_stopping(best_so_far),
            *self._common,
            # Last, so that an epoch is announced only once every checkpoint has it.
            _RecordEpochs(self._progress, phase, images_per_epoch=train.steps * train.batch_size),
        ]
        config = self._config
        num_epochs = config.phase1_epochs if phase == FEATURE_EXTRACTION else config.phase2_epochs
        model.fit(
            train.dataset,
            steps_per_epoch=train.steps,
            validation_data=evals.dataset,
            validation_steps=evals.steps,
            initial_epoch=first_epoch,
            epochs=first_epoch + num_epochs,
            callbacks=callbacks,
            class_weight=self._class_weight,
            # Keras's own epoch line would print the val_loss before it is put right:
            # _RecordEpochs prints each epoch's figures instead.
            verbose=0,
        )
        model.load_weights(best)

    def _early_stopping(self, best_so_far):
        patience = self._config.early_stopping_patience
        if not patience:
            return []
        # A resumed phase waits `patience` epochs afresh: the count is not checkpointed.
        return [_StopWhenStale(patience, best_so_far)]


def combined_history(phases: list[PhaseResult]) -> dict[str, list]:
    """Both phases' metrics as one series per metric, with their epoch numbers."""
    combined: dict[str, list] = {"epoch": [epoch for phase in phases for epoch in phase.epochs]}
    for phase in phases:
        for name, values in phase.history.items():
            combined.setdefault(name, []).extend(values)
    return combined


def validation_score(accuracy: float, loss: float) -> float:
    """The accuracy, less a share of the loss too small to outweigh one more right image:
    of two epochs, the more accurate is better, and of two as accurate, the lower loss."""
    return float(accuracy) - TIE_BREAK * float(loss) / (1.0 + float(loss))


def kept_epoch(phases: list[dict]) -> dict[str, float]:
    """The validation figures of the epoch whose weights a run keeps: the best score of
    either phase (the first, of equal ones, as the checkpoints keep it)."""
    epochs = [
        {name: values[index] for name, values in phase["history"].items()}
        for phase in phases
        for index in range(len(phase["epochs"]))
    ]
    return max(epochs, key=lambda figures: figures[MONITOR])


def kept_accuracy(phases: list[dict]) -> float:
    """The validation accuracy of the weights a run keeps."""
    return kept_epoch(phases)[ACCURACY]


def claim_work_dir(work_dir: str, identity: str, writer: bool) -> bool:
    """Makes `work_dir` this run's; returns whether it holds this run's state to resume.

    `identity` names the run: its inputs and settings (trainer/task.py). State
    another run left here (a killed run whose execution id this one reuses, after
    the metadata store was reset) is discarded, never trained on.
    """
    path = os.path.join(work_dir, IDENTITY_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            if f.read() == identity:
                logging.info("%s holds this run's state: resuming from it.", work_dir)
                return True
    if tf.io.gfile.exists(work_dir) and tf.io.gfile.listdir(work_dir):
        logging.warning(
            "Discarding %s: the state there belongs to another run (other data or settings).",
            work_dir,
        )
        if writer:
            tf.io.gfile.rmtree(work_dir)
    if writer:
        tf.io.gfile.makedirs(work_dir)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(identity)
    return False


class Progress:
    """Finished epochs and phases, in `<work_dir>/progress.json`.

    Every worker reads it; only the chief writes it, as with Keras' own
    checkpoints, so on several machines `work_dir` must be shared storage.
    """

    def __init__(self, work_dir: str, writer: bool):
        self._path = os.path.join(work_dir, PROGRESS_FILE)
        self._writer = writer
        self._state = {"epochs": {}, "phases": {}}
        if tf.io.gfile.exists(self._path):
            with tf.io.gfile.GFile(self._path) as f:
                self._state = json.load(f)

    def record_epoch(
        self, phase: str, epoch: int, logs: dict, learning_rate: float, images_per_second: float
    ) -> None:
        self._state["epochs"][str(epoch)] = {
            "phase": phase,
            "learning_rate": learning_rate,
            "images_per_second": images_per_second,
            "metrics": {name: float(value) for name, value in logs.items()},
        }
        self._save()

    def epochs_of(self, phase: str) -> list[tuple[int, dict]]:
        return sorted(
            (int(epoch), record)
            for epoch, record in self._state["epochs"].items()
            if record["phase"] == phase
        )

    def best_value(self, phase: str) -> float | None:
        values = [record["metrics"].get(MONITOR) for _, record in self.epochs_of(phase)]
        values = [value for value in values if value is not None]
        return max(values) if values else None

    def finish(
        self,
        phase: str,
        model: keras.Model,
        learning_rate: float,
        max_epochs: int,
        floor: float | None = None,
        feature_cache_seconds: float | None = None,
    ) -> PhaseResult:
        """The phase's record; its best epoch is the first with the best value above `floor`."""
        epochs = self.epochs_of(phase)
        history: dict[str, list[float]] = {}
        for _, record in epochs:
            for name, value in record["metrics"].items():
                history.setdefault(name, []).append(value)
        # The first epoch of a phase includes building its graph: leave it out when we can.
        speeds = [record["images_per_second"] for _, record in epochs]
        result = PhaseResult(
            name=phase,
            learning_rate=learning_rate,
            epochs=[epoch for epoch, _ in epochs],
            max_epochs=max_epochs,
            trainable_params=count_params(model.trainable_weights),
            history=history,
            images_per_second=float(np.median(speeds[1:] or speeds)),
            feature_cache_seconds=feature_cache_seconds,
        )
        values = history.get(MONITOR)
        if values and (floor is None or max(values) > floor):
            # The first epoch with the best value: the one ModelCheckpoint kept.
            result.best_epoch = result.epochs[int(np.argmax(values))]
        self._state["phases"][phase] = result.to_dict()
        self._save()
        return result

    def finished(self, phase: str) -> PhaseResult | None:
        done = self._state["phases"].get(phase)
        return PhaseResult(**done) if done else None

    def _save(self) -> None:
        if not self._writer:
            return
        tf.io.gfile.makedirs(os.path.dirname(self._path))
        partial = self._path + ".partial"
        with tf.io.gfile.GFile(partial, "w") as f:
            json.dump(self._state, f)
        tf.io.gfile.rename(partial, self._path, overwrite=True)


class _RealValidationLoss(keras.callbacks.Callback):
    """val_loss averaged over the real validation records only.

    A validation pass fills its last batch with weight-0 copies (trainer/data.py),
    and Keras divides each batch's weighted loss by the batch's size: its val_loss
    is too small by the share of copies (1/256 of the truth for one record in a
    batch of 256). The weighted cross-entropy metric (trainer/model.py) divides by
    the weights: it replaces val_loss, and its training twin is dropped (there,
    class weights would make it differ from the loss the optimizer minimises).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and f"val_{WEIGHTED_LOSS}" in logs:
            logs[LOSS] = logs.pop(f"val_{WEIGHTED_LOSS}")
        if logs is not None:
            logs.pop(WEIGHTED_LOSS, None)


def validation_figures() -> list[keras.callbacks.Callback]:
    """Callbacks that put an epoch's validation figures right (the loss over the real records)
    and add its score; before any callback that reads them."""
    return [_RealValidationLoss(), _ValidationScore()]


class _ValidationScore(keras.callbacks.Callback):
    """Adds the epoch's validation score (validation_score) to its figures."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and ACCURACY in logs:
            logs[MONITOR] = validation_score(logs[ACCURACY], logs[LOSS])


class _StopWhenStale(keras.callbacks.Callback):
    """Ends a phase once `patience` epochs in a row made no progress: a better score than
    `best_so_far` (for fine-tuning, phase 1's best; for a resumed phase, its own earlier
    epochs') and than every epoch since, by more accuracy or, at equal accuracy, by a loss
    at least MIN_LOSS_GAIN lower. The checkpoint still keeps the best score, however small
    its lead.

    Keras's EarlyStopping with a baseline keeps going while each epoch betters the last,
    even below the baseline: with the loss in the score, a fine-tuning run that never
    beats phase 1 would then use every epoch it is allowed.
    """

    def __init__(self, patience: int, best_so_far: float | None):
        super().__init__()
        self._patience = patience
        self._best = -np.inf if best_so_far is None else best_so_far
        self._best_figures: tuple[float, float] | None = None  # (accuracy, loss)
        self._stale = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if MONITOR in logs and self._progressed(logs[MONITOR], logs[ACCURACY], logs[LOSS]):
            self._best, self._best_figures = logs[MONITOR], (logs[ACCURACY], logs[LOSS])
            self._stale = 0
            return
        self._stale += 1
        if self._stale >= self._patience:
            logging.info("Stopping after epoch %d: %d epochs without progress.", epoch, self._stale)
            self.model.stop_training = True

    def _progressed(self, score: float, accuracy: float, loss: float) -> bool:
        if score <= self._best:
            return False
        if self._best_figures is None:
            return True
        best_accuracy, best_loss = self._best_figures
        return accuracy > best_accuracy or best_loss - loss >= MIN_LOSS_GAIN


class _RecordEpochs(keras.callbacks.Callback):
    """Records each finished epoch: metrics, learning rate, and training throughput."""

    def __init__(self, progress: Progress, phase: str, images_per_epoch: int):
        super().__init__()
        self._progress = progress
        self._phase = phase
        self._images_per_epoch = images_per_epoch
        self._started = self._trained = 0.0

    def on_train_begin(self, logs=None):
        done = [epoch for epoch, _ in self._progress.epochs_of(self._phase)]
        if done:
            logging.info("Resuming %s after epoch %d.", self._phase, done[-1])

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_test_begin(self, logs=None):
        # Validation follows the training steps: the time to here is training time.
        self._trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        learning_rate = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        speed = self._images_per_epoch / (self._trained - self._started)
        self._progress.record_epoch(self._phase, epoch, logs or {}, learning_rate, speed)
        figures = ", ".join(f"{name} {value:.4f}" for name, value in (logs or {}).items())
        print(
            f"[trainer] {self._phase} epoch {epoch} done ({speed:.0f} images/s): {figures}",
            flush=True,
        )


def count_params(weights: list[tf.Variable]) -> int:
    return int(sum(np.prod(w.shape) for w in weights))
