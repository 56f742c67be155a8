"""Every offered base network builds, trains a step, and exports faithfully."""

import numpy as np
import pytest
import tensorflow as tf

from imgclf.imagedata.decode import decode_and_resize
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.architectures import ARCHITECTURES
from imgclf.settings.model import ModelConfig
from imgclf.trainer.export import (
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    SERVING_DEFAULT,
    SERVING_IMAGES,
    export_model,
)
from imgclf.trainer.model import build_model, compile_model
from quick_training import MAX_PIXELS


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_trains_a_step_and_exports_the_same_predictions(name, tmp_path):
    size = ARCHITECTURES[name].min_image_size
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=size))
    pixels = tf.stack([decode_and_resize(r.image, size, MAX_PIXELS) for r in records])
    labels = tf.constant([r.label for r in records], tf.int64)
    model = build_model(
        ModelConfig(base_model=name, image_size=size, weights="none"), 4, batch_norm_learns=False
    )
    compile_model(model, "adam", 1e-2)
    head = model.get_layer("probabilities").kernel.numpy()
    model.fit(pixels, labels, epochs=1, verbose=0)
    assert not np.array_equal(model.get_layer("probabilities").kernel.numpy(), head)

    export_dir = str(tmp_path / "model")
    export_model(model, export_dir, list(DEFAULT_CLASSES), size, "image", {}, MAX_PIXELS)
    expected = model(pixels, training=False).numpy()
    served = tf.saved_model.load(export_dir).signatures
    examples = tf.constant([to_example(r).SerializeToString() for r in records])
    for outputs in (
        served[SERVING_IMAGES](**{IMAGES_INPUT: tf.constant([r.image for r in records])}),
        served[SERVING_DEFAULT](**{EXAMPLES_INPUT: examples}),
    ):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
