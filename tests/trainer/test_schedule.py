import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from imagedata.decode import decode_and_resize
from imagedata.sample import DEFAULT_CLASSES, generate_split
from pipeline.config import TrainingConfig
from trainer.distribution import make_strategy
from trainer.model import base_of, build_model
from trainer.schedule import FEATURE_EXTRACTION, FINE_TUNING, train_two_phases

FINE_TUNE_LAYERS = 10


def _dataset(split: str, per_class: int) -> tf.data.Dataset:
    records = list(generate_split(DEFAULT_CLASSES, split, per_class, size=32))
    images = tf.stack([decode_and_resize(r.image, 32) for r in records])
    labels = tf.constant([r.label for r in records], tf.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)


def _snapshot(layers) -> dict[str, np.ndarray]:
    """Every variable, trainable or not (BatchNormalization statistics included)."""
    return {w.name: w.numpy().copy() for layer in layers for w in layer.weights}


class _WeightsAtEachPhaseEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_train_end(self, logs=None):
        head = self.model.get_layer("probabilities")
        self.snapshots.append(_snapshot([base_of(self.model), head]))


def _train(model_config, training_config):
    strategy = make_strategy(1)
    with strategy.scope():
        model = build_model(model_config, num_classes=len(DEFAULT_CLASSES))
    before = _snapshot([base_of(model), model.get_layer("probabilities")])
    recorder = _WeightsAtEachPhaseEnd()
    phases = train_two_phases(
        model, _dataset("train", 8), _dataset("eval", 2), training_config, strategy, [recorder]
    )
    return model, phases, [before, *recorder.snapshots]


@pytest.fixture(scope="module")
def two_phase_run(tiny_backbone):
    config = TrainingConfig(
        phase1_epochs=2,
        phase1_learning_rate=1e-2,
        phase2_epochs=2,
        phase2_learning_rate=3e-3,
        fine_tune_layers=FINE_TUNE_LAYERS,
    )
    model, phases, (before, after_phase1, after_phase2) = _train(tiny_backbone, config)
    return {
        "base": base_of(model),
        "phases": phases,
        "before": before,
        "after_phase1": after_phase1,
        "after_phase2": after_phase2,
    }


def test_phase1_leaves_every_base_variable_bit_identical_and_trains_the_head(two_phase_run):
    before, after = two_phase_run["before"], two_phase_run["after_phase1"]
    base_names = [w.name for w in two_phase_run["base"].weights]
    assert any("moving_mean" in name for name in base_names)
    for name in base_names:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    head = [name for name in before if name.startswith("probabilities/")]
    assert head and all(not np.array_equal(before[n], after[n]) for n in head)


def test_phase2_changes_only_unfrozen_non_batchnorm_layers_and_the_head(two_phase_run):
    base = two_phase_run["base"]
    unfrozen = {
        layer.name
        for layer in base.layers[-FINE_TUNE_LAYERS:]
        if not isinstance(layer, keras.layers.BatchNormalization)
    }
    after_phase1, now = two_phase_run["after_phase1"], two_phase_run["after_phase2"]
    changed_layers = set()
    for layer in base.layers:
        for weight in layer.weights:
            if not np.array_equal(after_phase1[weight.name], now[weight.name]):
                changed_layers.add(layer.name)
    assert changed_layers <= unfrozen
    assert changed_layers, "fine-tuning changed nothing in the base"
    assert not np.array_equal(after_phase1["probabilities/kernel:0"], now["probabilities/kernel:0"])


def test_epochs_continue_and_learning_rates_are_the_configured_ones(two_phase_run):
    phase1, phase2 = two_phase_run["phases"]
    assert (phase1.name, phase2.name) == (FEATURE_EXTRACTION, FINE_TUNING)
    assert phase1.epochs == [0, 1]
    assert phase2.epochs == [2, 3]
    assert phase1.learning_rate == pytest.approx(1e-2)
    assert phase2.learning_rate == pytest.approx(3e-3)
    assert phase2.trainable_params > phase1.trainable_params
    assert set(phase2.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_phase2_can_be_switched_off(tiny_backbone):
    config = TrainingConfig(phase1_epochs=1, phase2_epochs=0)
    _, phases, (before, after) = _train(tiny_backbone, config)
    assert [phase.name for phase in phases] == [FEATURE_EXTRACTION]
    base_weights = [name for name in before if not name.startswith("probabilities/")]
    assert all(np.array_equal(before[name], after[name]) for name in base_weights)
