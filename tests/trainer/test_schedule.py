import glob
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from imgclf.imagedata.decode import decode_and_resize
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.training import MIN_LOSS_GAIN, TrainingConfig
from imgclf.trainer.data import Input, weighted_passes
from imgclf.trainer.distribution import make_strategy
from imgclf.trainer.model import base_of, build_model
from imgclf.trainer.schedule import (
    FEATURE_EXTRACTION,
    FINE_TUNING,
    IDENTITY_FILE,
    MONITOR,
    PROGRESS_FILE,
    _StopWhenStale,
    claim_work_dir,
    combined_history,
    fine_tuning_rate,
    kept_epoch,
    train_two_phases,
    validation_score,
)
from quick_training import MAX_PIXELS

FINE_TUNE_LAYERS = 10
PHASE1_EPOCHS = 5


def _input(split: str, per_class: int, batch_size: int = 16) -> Input:
    records = list(generate_split(DEFAULT_CLASSES, split, per_class, size=32))
    images = tf.stack([decode_and_resize(r.image, 32, MAX_PIXELS) for r in records])
    labels = tf.constant([r.label for r in records], tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
    steps = math.ceil(len(records) / batch_size)
    return Input(dataset.batch(batch_size, drop_remainder=True), steps, len(records), batch_size)


def _snapshot(model) -> dict[str, np.ndarray]:
    """Every variable of base and head, trainable or not (BatchNormalization statistics too)."""
    layers = [base_of(model), model.get_layer("probabilities")]
    return {w.name: w.numpy().copy() for layer in layers for w in layer.weights}


class _Watch(keras.callbacks.Callback):
    """Weights when each phase starts and ends, and after every epoch, with its logs."""

    def __init__(self):
        super().__init__()
        self.at_start, self.at_end, self.epochs = [], [], {}

    def on_train_begin(self, logs=None):
        self.at_start.append(_snapshot(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[epoch] = (dict(logs), _snapshot(self.model))

    def on_train_end(self, logs=None):
        self.at_end.append(_snapshot(self.model))


def _train(model_config, training_config, work_dir, log_dirs=(), seed=0):
    # Whatever test ran before in this process: the same head, the same epochs.
    keras.utils.set_random_seed(seed)
    strategy = make_strategy(1)
    with strategy.scope():
        model = build_model(model_config, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    watch = _Watch()
    phases = train_two_phases(
        model,
        _input("train", 8),
        _input("eval", 4),
        training_config,
        strategy,
        str(work_dir),
        log_dirs=[str(log_dir) for log_dir in log_dirs],
        callbacks=[watch],
    )
    return model, phases, watch


@pytest.fixture(scope="module")
def two_phases(tiny_backbone, tmp_path_factory):
    # A high phase-1 learning rate makes validation accuracy jump about, so that
    # its best epoch is not its last: phase 2 must start from the best.
    config = TrainingConfig(
        phase1_epochs=PHASE1_EPOCHS,
        phase1_learning_rate=0.3,
        phase2_epochs=2,
        phase2_learning_rate=3e-3,
        fine_tune_layers=FINE_TUNE_LAYERS,
        fine_tune_batch_norm=False,
    )
    work_dir = tmp_path_factory.mktemp("work")
    # The model run's and Vertex AI's TensorBoard folder (trainer/task.py: tensorboard_dirs).
    log_dirs = [tmp_path_factory.mktemp("logs"), tmp_path_factory.mktemp("vertex_logs")]
    # A seed whose best phase-1 epoch (the lowest validation loss: at this rate the model stays
    # near chance, every epoch as accurate) is not its last.
    model, phases, watch = _train(tiny_backbone, config, work_dir, log_dirs, seed=1)
    return {
        "model": model,
        "phases": phases,
        "watch": watch,
        "work_dir": work_dir,
        "log_dirs": log_dirs,
    }


@pytest.mark.slow
def test_phase1_leaves_every_base_variable_bit_identical_and_trains_the_head(two_phases):
    watch = two_phases["watch"]
    before, after = watch.at_start[0], watch.at_end[0]
    base_names = [w.name for w in base_of(two_phases["model"]).weights]
    assert any("moving_mean" in name for name in base_names)
    for name in base_names:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    head = [name for name in before if name.startswith("probabilities/")]
    assert head and all(not np.array_equal(before[n], after[n]) for n in head)


@pytest.mark.slow
def test_phase2_starts_from_the_best_phase1_epoch_not_the_last(two_phases):
    phase1 = two_phases["phases"][0]
    watch = two_phases["watch"]
    scores = [watch.epochs[e][0][MONITOR] for e in range(PHASE1_EPOCHS)]
    best = int(np.argmax(scores))
    assert phase1.best_epoch == best
    assert best != PHASE1_EPOCHS - 1, f"test needs a best epoch before the last: {scores}"
    start_of_phase2 = watch.at_start[1]
    for name, value in watch.epochs[best][1].items():
        np.testing.assert_array_equal(start_of_phase2[name], value, err_msg=name)


@pytest.mark.slow
def test_phase2_changes_only_unfrozen_non_batchnorm_layers_and_the_head(two_phases):
    base = base_of(two_phases["model"])
    unfrozen = {
        layer.name
        for layer in base.layers[-FINE_TUNE_LAYERS:]
        if not isinstance(layer, keras.layers.BatchNormalization)
    }
    start, end = two_phases["watch"].at_start[1], two_phases["watch"].at_end[1]
    changed = {
        layer.name
        for layer in base.layers
        for w in layer.weights
        if not np.array_equal(start[w.name], end[w.name])
    }
    assert changed and changed <= unfrozen
    assert not np.array_equal(start["probabilities/kernel:0"], end["probabilities/kernel:0"])


@pytest.mark.slow
def test_epochs_continue_and_learning_rates_are_the_configured_ones(two_phases):
    phase1, phase2 = two_phases["phases"]
    assert (phase1.name, phase2.name) == (FEATURE_EXTRACTION, FINE_TUNING)
    assert phase1.epochs == list(range(PHASE1_EPOCHS))
    assert phase2.epochs == [PHASE1_EPOCHS, PHASE1_EPOCHS + 1]
    assert phase1.learning_rate == pytest.approx(0.3)
    assert phase2.learning_rate == pytest.approx(3e-3)
    assert phase2.trainable_params > phase1.trainable_params
    assert phase1.images_per_second > 0 and phase2.images_per_second > 0
    history = combined_history(two_phases["phases"])
    assert history["epoch"] == list(range(PHASE1_EPOCHS + 2))
    assert len(history["val_accuracy"]) == PHASE1_EPOCHS + 2


@pytest.mark.slow
def test_tensorboard_logs_both_phases_as_one_run_in_each_folder(two_phases):
    for log_dir in two_phases["log_dirs"]:
        steps = set()
        for event_file in glob.glob(str(log_dir / "validation" / "events.*")):
            for event in tf.compat.v1.train.summary_iterator(event_file):
                if any(value.tag == "epoch_accuracy" for value in event.summary.value):
                    steps.add(event.step)
        assert steps == set(range(PHASE1_EPOCHS + 2)), log_dir


@pytest.mark.slow
def test_progress_is_recorded_for_resumption(two_phases):
    with open(two_phases["work_dir"] / PROGRESS_FILE) as f:
        progress = json.load(f)
    assert set(progress["phases"]) == {FEATURE_EXTRACTION, FINE_TUNING}
    assert sorted(int(epoch) for epoch in progress["epochs"]) == list(range(PHASE1_EPOCHS + 2))


@pytest.mark.slow
def test_phase2_can_be_switched_off(tiny_backbone, tmp_path):
    config = TrainingConfig(phase1_epochs=1, phase2_epochs=0)
    model, phases, watch = _train(tiny_backbone, config, tmp_path)
    assert [phase.name for phase in phases] == [FEATURE_EXTRACTION]
    assert len(watch.at_start) == 1
    base_weights = [w.name for w in base_of(model).weights]
    assert all(np.array_equal(watch.at_start[0][n], watch.at_end[0][n]) for n in base_weights)
    assert os.path.exists(tmp_path / PROGRESS_FILE)


def test_a_work_dir_is_resumed_only_by_the_run_it_belongs_to(tmp_path):
    work_dir = str(tmp_path / "work")
    assert not claim_work_dir(work_dir, "run a", writer=True)  # nothing to resume yet
    with open(os.path.join(work_dir, PROGRESS_FILE), "w") as f:
        json.dump({"epochs": {"0": {}}, "phases": {}}, f)
    os.makedirs(os.path.join(work_dir, "backup", FINE_TUNING))
    # The same run, restarted: its state stays.
    assert claim_work_dir(work_dir, "run a", writer=True)
    assert os.path.exists(os.path.join(work_dir, PROGRESS_FILE))
    # Another run given the same folder: nothing of run a's is kept, and it is now b's.
    assert not claim_work_dir(work_dir, "run b", writer=True)
    assert os.listdir(work_dir) == [IDENTITY_FILE]
    assert claim_work_dir(work_dir, "run b", writer=True)


def test_state_left_without_an_identity_is_never_resumed(tmp_path):
    work_dir = tmp_path / "work"
    (work_dir / "backup").mkdir(parents=True)
    (work_dir / PROGRESS_FILE).write_text("{}")
    assert not claim_work_dir(str(work_dir), "run a", writer=True)
    assert os.listdir(work_dir) == [IDENTITY_FILE]


def test_the_score_ranks_by_accuracy_and_breaks_ties_by_the_lower_loss():
    # One more right image of a million outweighs any loss; of equal accuracies, the lower loss.
    assert validation_score(0.999999, 100.0) > validation_score(0.999998, 0.0)
    assert validation_score(1.0, 0.01) > validation_score(1.0, 0.02) > validation_score(1.0, 5.0)
    phases = [
        {"epochs": [0, 1], "history": _history([0.9, 1.0], [0.30, 0.20])},
        {"epochs": [2, 3, 4], "history": _history([1.0, 1.0, 0.95], [0.15, 0.05, 0.01])},
    ]
    assert kept_epoch(phases)["val_loss"] == 0.05


def test_once_accuracy_saturates_a_loss_creeping_down_is_not_progress():
    # The demo's fine-tuning (a fresh clone, before MIN_LOSS_GAIN): validation accuracy 1.0
    # from its 9th epoch, the loss drifting from 0.0103 to 0.0003, and all 38 epochs trained.
    accuracies = [0.8889, 0.9697, 0.9697, 0.9394, 0.9899, 0.9899, 0.9899, 0.9899]
    accuracies += [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9899, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9899]
    accuracies += [1.0] * 16
    losses = [0.3216, 0.2028, 0.1133, 0.2187, 0.0493, 0.0239, 0.0677, 0.0426, 0.0103, 0.0055]
    losses += [0.0083, 0.0015, 0.0039, 0.0024, 0.001, 0.0228, 0.0018, 0.002, 0.0009, 0.0006]
    losses += [0.0018, 0.0134, 0.0017, 0.0005, 0.0004, 0.0004, 0.0004, 0.0004, 0.0004, 0.0005]
    losses += [0.0004, 0.0004, 0.0003, 0.0004, 0.0004, 0.0004, 0.0004, 0.0004]
    history = _history(accuracies, losses)
    stop = _StopWhenStale(patience=5, best_so_far=validation_score(0.7071, 0.7328))
    stop.model = keras.Sequential()
    epochs = 0
    while not stop.model.stop_training:
        stop.on_epoch_end(epochs, {name: values[epochs] for name, values in history.items()})
        epochs += 1
    # The last progress: the 12th epoch (loss 0.0015, 0.004 below the one before); then 5 more.
    assert epochs == 12 + 5
    # The checkpoint still keeps the lowest loss among them: the 15th epoch's 0.001.
    assert np.argmax(history[MONITOR][:epochs]) == 14


def _history(accuracies: list[float], losses: list[float]) -> dict[str, list[float]]:
    scores = [validation_score(a, loss) for a, loss in zip(accuracies, losses, strict=True)]
    return {"val_accuracy": accuracies, "val_loss": losses, MONITOR: scores}


@pytest.mark.slow
def test_once_the_accuracy_stops_moving_the_lower_loss_picks_the_epoch_but_a_wobble_stops_it(
    tiny_backbone, tmp_path
):
    config = TrainingConfig(
        phase1_epochs=12, phase1_learning_rate=0.01, phase2_epochs=0, early_stopping_patience=2
    )
    _, (phase1,), _ = _train(tiny_backbone, config, tmp_path)
    accuracies, losses = phase1.history["val_accuracy"], phase1.history["val_loss"]
    assert phase1.history[MONITOR] == [
        validation_score(a, loss) for a, loss in zip(accuracies, losses, strict=True)
    ]
    top = [i for i, accuracy in enumerate(accuracies) if accuracy == max(accuracies)]
    assert len(top) > 1, f"test needs epochs of equal accuracy: {accuracies}"
    best = min(top, key=lambda i: losses[i])
    assert phase1.best_epoch == phase1.epochs[best]
    assert best != top[0], f"test needs a later epoch of lower loss: {accuracies} {losses}"
    # At chance, the loss only wobbles (by less than MIN_LOSS_GAIN): no progress, so the phase
    # stopped `patience` epochs after the first of its best, the later one kept all the same.
    assert max(losses[top[0]] - loss for loss in losses) < MIN_LOSS_GAIN
    assert len(phase1.epochs) == top[0] + 3


def _last_progress(accuracies: list[float], losses: list[float]) -> int:
    last, figures = 0, (accuracies[0], losses[0])
    for epoch, (accuracy, loss) in enumerate(zip(accuracies, losses, strict=True)):
        if accuracy > figures[0] or (accuracy == figures[0] and figures[1] - loss >= MIN_LOSS_GAIN):
            last, figures = epoch, (accuracy, loss)
    return last


def _val_accuracy(model, evals: Input) -> float:
    return model.evaluate(evals.dataset, steps=evals.steps, verbose=0)[1]


@pytest.mark.slow
def test_a_phase_given_too_many_epochs_stops_early_and_keeps_its_best_epoch(
    tiny_backbone, tmp_path
):
    # A learning rate this high makes validation accuracy jump about, then stall.
    config = TrainingConfig(
        phase1_epochs=60, phase1_learning_rate=0.3, phase2_epochs=0, early_stopping_patience=3
    )
    model, (phase1,), watch = _train(tiny_backbone, config, tmp_path)
    accuracies = phase1.history["val_accuracy"]
    assert phase1.max_epochs == 60 and len(phase1.epochs) < 60
    best = int(np.argmax(phase1.history[MONITOR]))
    assert phase1.best_epoch == best
    # It stopped `patience` epochs after its last progress (the best epoch, or one the best
    # beat only by less loss than MIN_LOSS_GAIN), and left with the best epoch's weights.
    last = _last_progress(accuracies, phase1.history["val_loss"])
    assert last <= best and phase1.epochs[-1] == last + 3
    for name, value in watch.epochs[best][1].items():
        np.testing.assert_array_equal(_snapshot(model)[name], value, err_msg=name)
    assert _val_accuracy(model, _input("eval", 4)) == pytest.approx(accuracies[best])


@pytest.mark.slow
def test_fine_tuning_that_never_beats_phase1_leaves_phase1s_best_weights(tiny_backbone, tmp_path):
    config = TrainingConfig(
        phase1_epochs=4,
        phase1_learning_rate=0.3,
        phase2_epochs=20,
        # Far too high: fine-tuning wrecks the model at once, and never recovers.
        phase2_learning_rate=50.0,
        phase2_schedule="constant",
        fine_tune_layers="all",
        early_stopping_patience=2,
    )
    model, (phase1, phase2), watch = _train(tiny_backbone, config, tmp_path)
    assert max(phase2.history["val_accuracy"]) <= max(phase1.history["val_accuracy"])
    after_phase1 = phase1.epochs[-1] + 1
    assert phase2.best_epoch is None and phase2.epochs == [after_phase1, after_phase1 + 1]
    for name, value in watch.epochs[phase1.best_epoch][1].items():
        np.testing.assert_array_equal(_snapshot(model)[name], value, err_msg=name)


def test_fine_tuning_warms_up_then_decays_along_a_cosine():
    config = TrainingConfig(phase2_epochs=10, phase2_learning_rate=1e-3, warmup_epochs=2)
    rate = fine_tuning_rate(config, steps_per_epoch=5)
    values = [float(rate(step)) for step in range(51)]
    assert values[0] == 0.0 and values[10] == pytest.approx(1e-3)
    assert values[:11] == sorted(values[:11]) and values[10:] == sorted(values[10:], reverse=True)
    assert values[30] == pytest.approx(0.5e-3, rel=1e-3) and values[50] == pytest.approx(0.0)
    constant = config.model_copy(update={"phase2_schedule": "constant"})
    assert fine_tuning_rate(constant, steps_per_epoch=5) == 1e-3
    # Fewer epochs than the warm-up: all but the last step warm up.
    short = fine_tuning_rate(config.model_copy(update={"phase2_epochs": 1}), steps_per_epoch=5)
    assert float(short(4)) == pytest.approx(1e-3)


@pytest.mark.slow
def test_fine_tune_batch_norm_trains_every_layer_statistics_included(tiny_backbone, tmp_path):
    config = TrainingConfig(
        phase1_epochs=1, phase2_epochs=1, fine_tune_layers="all", fine_tune_batch_norm=True
    )
    strategy = make_strategy(1)
    with strategy.scope():
        model = build_model(tiny_backbone, len(DEFAULT_CLASSES), batch_norm_learns=True)
    watch = _Watch()
    train_two_phases(
        model,
        _input("train", 8),
        _input("eval", 4),
        config,
        strategy,
        str(tmp_path),
        callbacks=[watch],
    )
    base = base_of(model)
    # Phase 1: the frozen base, statistics included, stays as it was.
    for w in base.weights:
        np.testing.assert_array_equal(watch.at_start[0][w.name], watch.at_end[0][w.name])
    # Phase 2: every layer with weights changed, BatchNormalization's moving statistics too.
    start, end = watch.at_start[1], watch.at_end[1]
    unchanged = [w.name for w in base.weights if np.array_equal(start[w.name], end[w.name])]
    assert not unchanged
    assert any("moving_mean" in w.name for w in base.weights)


@pytest.mark.slow
def test_the_recorded_validation_loss_is_the_mean_over_the_real_records(tiny_backbone, tmp_path):
    # Three validation records in a batch of 8: five fill-up copies that weigh 0.
    records = list(generate_split(DEFAULT_CLASSES, "eval", 1, size=32))[:3]
    images = tf.stack([decode_and_resize(r.image, 32, MAX_PIXELS) for r in records])
    labels = np.array([r.label for r in records])
    evals = weighted_passes(tf.data.Dataset.from_tensor_slices((images, labels)), 3, 8)
    strategy = make_strategy(1)
    with strategy.scope():
        model = build_model(
            tiny_backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False
        )
    watch = _Watch()
    config = TrainingConfig(phase1_epochs=1, phase2_epochs=0)
    [phase] = train_two_phases(
        model, _input("train", 4), evals, config, strategy, str(tmp_path), callbacks=[watch]
    )
    # By hand, with the weights the epoch ended with (the best, and only, epoch).
    probabilities = model(images, training=False).numpy()
    by_hand = -np.mean(np.log(probabilities[np.arange(3), labels]))
    assert phase.history["val_loss"] == [pytest.approx(by_hand, rel=1e-4)]
    assert phase.history["val_accuracy"] == [
        pytest.approx(np.mean(probabilities.argmax(axis=1) == labels))
    ]
    # Every callback saw the same, and no stand-in metric is left over.
    logs = watch.epochs[0][0]
    assert logs["val_loss"] == phase.history["val_loss"][0]
    assert not any("weighted" in name for name in logs)
