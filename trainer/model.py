"""The classifier: a pretrained `keras.applications` base under a small new head.

    pixels [0, 255] -> the base's own input scaling -> base (training=False)
        -> global average pooling -> dropout -> dense softmax

The base is always called with `training=False`, so its BatchNormalization
layers keep using their ImageNet statistics, in feature extraction and in
fine-tuning alike (unfreezing them would wreck what the base learned).
"""

from __future__ import annotations

import tempfile

import tensorflow as tf
import tf_keras as keras

from pipeline.config import ModelConfig
from trainer.architectures import ARCHITECTURES

OUTPUT_NAME = "probabilities"


def build_model(config: ModelConfig, num_classes: int) -> keras.Model:
    """The full classifier with its base frozen, ready for feature extraction."""
    inputs = keras.Input((config.image_size, config.image_size, 3), name="pixels")
    x = scale_inputs(inputs, config.base_model)
    base = build_base(config)
    base.trainable = False
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"{config.base_model}_classifier")


def scale_inputs(pixels: keras.KerasTensor, base_model: str) -> keras.KerasTensor:
    """Scales [0, 255] pixels the way the base network was trained to see them."""
    architecture = ARCHITECTURES[base_model]
    if architecture.scale is None:
        return pixels
    return keras.layers.Rescaling(architecture.scale, architecture.offset, name="scaling")(pixels)


def build_base(config: ModelConfig) -> keras.Model:
    """The headless `keras.applications` network with the configured weights."""
    constructor = getattr(keras.applications, config.base_model)
    options = {"include_top": False, "input_shape": (config.image_size, config.image_size, 3)}
    if ARCHITECTURES[config.base_model].has_width_multiplier:
        options["alpha"] = config.alpha
    if config.weights == "imagenet":
        base = constructor(weights="imagenet", **options)
    else:
        base = constructor(weights=None, **options)
        if config.weights != "none":
            load_weights_file(base, config.weights)
    return base


def load_weights_file(base: keras.Model, path: str) -> None:
    """Loads a weights file from any filesystem TensorFlow reads (local, gs://, ...)."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"model.weights file {path!r} does not exist.")
    with tempfile.TemporaryDirectory() as local:
        local_path = f"{local}/weights.h5"
        tf.io.gfile.copy(path, local_path)
        base.load_weights(local_path)


def base_of(model: keras.Model) -> keras.Model:
    """The pretrained network inside the classifier: its only layer that is a model."""
    (base,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return base


def unfreeze_top(model: keras.Model, num_layers: int) -> None:
    """Makes the top `num_layers` layers of the base trainable, except BatchNormalization."""
    base = base_of(model)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        top = index >= len(base.layers) - num_layers
        layer.trainable = top and not isinstance(layer, keras.layers.BatchNormalization)


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
