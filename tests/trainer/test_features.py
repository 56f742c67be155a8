"""Phase 1 on cached features: the same head as through the frozen base, for far less compute."""

import os

import numpy as np
import pytest
import tensorflow as tf

from imgclf.imagedata.sample import DEFAULT_CLASSES
from imgclf.settings.data import DataConfig
from imgclf.settings.model import ModelConfig
from imgclf.settings.training import TrainingConfig
from imgclf.trainer.data import eval_input, train_input
from imgclf.trainer.distribution import make_strategy
from imgclf.trainer.features import cache_phase1
from imgclf.trainer.model import base_of, build_model
from imgclf.trainer.schedule import train_two_phases

IMAGE_SIZE = 64
BATCH = 16
NO_AUGMENTATION = {
    "random_flip": False,
    "random_rotation": 0.0,
    "random_zoom": 0.0,
    "random_contrast": 0.0,
}


def head_and_base(model) -> tuple[list[np.ndarray], list[np.ndarray]]:
    head = [w.numpy() for w in model.get_layer("probabilities").weights]
    base = [w.numpy() for w in base_of(model).weights]
    return head, base


def train_phase1(sample_data, backbone, training, work_dir, cached: bool):
    """Phase 1 from the same initial weights; through the base, or on cached features."""
    data = DataConfig(root=sample_data)
    files = {split: [os.path.join(sample_data, split, "*")] for split in ("train", "eval")}
    strategy = make_strategy(2)
    tf.keras.utils.set_random_seed(training.seed)
    with strategy.scope():
        model = build_model(backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    before = head_and_base(model)
    train = train_input(files["train"], data, IMAGE_SIZE, BATCH * 2, training)
    evals = eval_input(files["eval"], data, IMAGE_SIZE, BATCH * 2)

    def cache():
        return cache_phase1(
            model, files["train"], files["eval"], data, training, train, evals, work_dir + "/cache"
        )

    phases = train_two_phases(
        model, train, evals, training, strategy, work_dir, cache_phase1=cache if cached else None
    )
    return before, head_and_base(model), phases[0]


# Every test here needs a base whose features tell the shapes apart: the demo's,
# pretrained for about a minute, so the module is in `make test`, not `make check`.
@pytest.fixture(scope="module")
def backbone(backbone_weights):
    """The demo's base, pretrained on other shapes: its features tell the sample shapes apart."""
    return ModelConfig(
        base_model="MobileNetV2",
        alpha=0.35,
        image_size=IMAGE_SIZE,
        weights=backbone_weights,
        dropout=0.0,
    )


@pytest.mark.slow
def test_without_augmentation_the_cached_head_equals_the_head_trained_through_the_base(
    sample_data, backbone, tmp_path
):
    training = TrainingConfig(
        phase1_epochs=3, phase2_epochs=0, batch_size=BATCH, shuffle_buffer=64, **NO_AUGMENTATION
    )
    assert training.uses_feature_cache  # on by default without augmentation
    start, through_base, plain = train_phase1(
        sample_data, backbone, training, str(tmp_path / "plain"), cached=False
    )
    start_cached, on_features, cached = train_phase1(
        sample_data, backbone, training, str(tmp_path / "cached"), cached=True
    )
    for initial, again in zip(start[0], start_cached[0], strict=True):
        np.testing.assert_array_equal(initial, again)  # the same seed, the same initial head
    for trained, initial in zip(through_base[0], start[0], strict=True):
        assert not np.allclose(trained, initial)  # the head learned
    for a, b in zip(through_base[0], on_features[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for frozen, initial in zip(on_features[1], start[1], strict=True):
        np.testing.assert_array_equal(frozen, initial)  # the base did not move
    np.testing.assert_allclose(
        plain.history["val_accuracy"], cached.history["val_accuracy"], atol=1e-6
    )
    assert cached.feature_cache_seconds > 0 and plain.feature_cache_seconds is None


def cache_for(sample_data, backbone, training, cache_dir):
    data = DataConfig(root=sample_data)
    files = {split: [os.path.join(sample_data, split, "*")] for split in ("train", "eval")}
    model = build_model(backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    train = train_input(files["train"], data, IMAGE_SIZE, BATCH, training)
    evals = eval_input(files["eval"], data, IMAGE_SIZE, BATCH)
    return cache_phase1(
        model, files["train"], files["eval"], data, training, train, evals, cache_dir
    )


@pytest.mark.slow
def test_features_over_the_memory_budget_stream_from_files_in_the_same_order(
    sample_data, backbone, tmp_path
):
    training = TrainingConfig(batch_size=BATCH, **NO_AUGMENTATION)
    in_memory = cache_for(sample_data, backbone, training, str(tmp_path / "memory"))
    on_disk = cache_for(
        sample_data,
        backbone,
        training.model_copy(update={"feature_cache_memory_mb": 0}),
        str(tmp_path / "disk"),
    )
    assert not (tmp_path / "memory").exists()
    records = list(tf.data.TFRecordDataset(str(tmp_path / "disk" / "train_features.tfrecord")))
    assert len(records) == on_disk.train.examples == 128  # the sample data's train split
    first_two = [
        tf.io.parse_single_example(r, {"features": tf.io.VarLenFeature(tf.float32)})
        for r in records[:2]
    ]
    a, b = (tf.sparse.to_dense(f["features"]).numpy() for f in first_two)
    assert not np.allclose(a, b)  # features that tell images apart, not a constant
    for split in ("train", "evals"):
        first = getattr(in_memory, split).dataset.take(5)
        second = getattr(on_disk, split).dataset.take(5)
        # Train batches are (features, labels); validation passes add weights.
        for batch_a, batch_b in zip(first, second, strict=True):
            np.testing.assert_allclose(batch_a[0].numpy(), batch_b[0].numpy(), rtol=1e-6)
            for a, b in zip(batch_a[1:], batch_b[1:], strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_with_augmentation_the_cache_is_off_unless_asked_and_then_holds_k_views(
    sample_data, backbone, tmp_path
):
    assert not TrainingConfig().uses_feature_cache  # augmentation is on by default
    training = TrainingConfig(
        batch_size=BATCH, cache_features=True, cached_views=3, feature_cache_memory_mb=0
    )
    assert training.uses_feature_cache
    views = cache_for(sample_data, backbone, training, str(tmp_path))
    features = [
        tf.io.parse_single_example(r, {"features": tf.io.VarLenFeature(tf.float32)})["features"]
        for r in tf.data.TFRecordDataset(str(tmp_path / "train_features.tfrecord"))
    ]
    assert len(features) == 3 * views.train.examples
    # The views of an image differ: each is a new random augmentation.
    first, second = (tf.sparse.to_dense(features[i]).numpy() for i in (0, views.train.examples))
    assert not np.allclose(first, second)
