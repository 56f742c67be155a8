"""The classifier: a pretrained `keras.applications` base under a small new head.

    pixels [0, 255] -> the base's own input scaling -> base (training=False)
        -> features: global average pooling of the top, or a named
           intermediate layer, flattened
        -> optional hidden dense layer -> dropout -> class probabilities

The base is called with `training=False`, so its BatchNormalization layers
keep using their pretrained statistics, in feature extraction and in
fine-tuning alike (updating them on a small dataset would wreck what the base
learned). For data far from the base's source task, `batch_norm_learns`
leaves the base's mode to Keras instead: frozen layers then still run in
inference mode, and BatchNormalization layers that fine-tuning unfreezes learn
their scale, offset and statistics from the new data.
"""

from __future__ import annotations

import os
import re
import tempfile

import h5py
import tensorflow as tf

from imgclf.settings.architectures import ARCHITECTURES
from imgclf.settings.base import ConfigError
from imgclf.settings.model import ModelConfig
from imgclf.trainer.legacy_keras import keras

OUTPUT_NAME = "probabilities"
POOLING_NAME = "pooling"


class WeightsUnavailableError(ConfigError):
    """Pretrained weights could not be downloaded; the message says what to do instead:
    place the file, or change model.weights."""


class WeightsMismatchError(ValueError):
    """A weights file does not fit the configured architecture."""


def build_model(config: ModelConfig, num_classes: int, *, batch_norm_learns: bool) -> keras.Model:
    """The full classifier with its base frozen, ready for feature extraction.

    The output is always class probabilities [batch, num_classes]. A binary
    head has one sigmoid unit p, returned as [1 - p, p], so training, TFMA and
    clients see the same shape whatever the head.
    """
    if config.binary and num_classes != 2:
        raise ValueError(
            f"model.binary needs exactly 2 classes; the labels file has {num_classes}."
        )
    inputs = keras.Input((config.image_size, config.image_size, 3), name="pixels")
    base = build_base(config)
    base.trainable = False
    x = base(scale_inputs(inputs, config.base_model), training=None if batch_norm_learns else False)
    if config.feature_layer:
        x = keras.layers.Flatten(name=POOLING_NAME)(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name=POOLING_NAME)(x)
    if config.head_units:
        x = keras.layers.Dense(config.head_units, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    # Float32 outputs keep the softmax stable under mixed precision.
    if config.binary:
        positive = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="positive")(x)
        outputs = keras.layers.Concatenate(dtype="float32", name=OUTPUT_NAME)(
            [1.0 - positive, positive]
        )
    else:
        outputs = keras.layers.Dense(
            num_classes, activation="softmax", dtype="float32", name=OUTPUT_NAME
        )(x)
    return keras.Model(inputs, outputs, name=f"{config.base_model}_classifier")


def scale_inputs(pixels: keras.KerasTensor, base_model: str) -> keras.KerasTensor:
    """Scales [0, 255] pixels the way the base network was trained to see them."""
    architecture = ARCHITECTURES[base_model]
    if architecture.scale is None:
        return pixels
    return keras.layers.Rescaling(architecture.scale, architecture.offset, name="scaling")(pixels)


def build_base(config: ModelConfig) -> keras.Model:
    """The headless `keras.applications` network with the configured weights.

    With `feature_layer` set, the network ends at that layer.
    """
    constructor = getattr(keras.applications, config.base_model)
    options = {"include_top": False, "input_shape": (config.image_size, config.image_size, 3)}
    if ARCHITECTURES[config.base_model].has_width_multiplier:
        options["alpha"] = config.alpha
    if config.weights == "imagenet":
        base = _download_imagenet(constructor, options, config.base_model)
    else:
        base = constructor(weights=None, **options)
        if config.weights != "none":
            load_weights_file(base, config.weights, config.base_model)
    if not config.feature_layer:
        return base
    try:
        features = base.get_layer(config.feature_layer).output
    except ValueError:
        names = ", ".join(layer.name for layer in base.layers[-8:])
        raise ValueError(
            f"model.feature_layer {config.feature_layer!r} is not a layer of "
            f"{config.base_model}; its last layers are: {names}."
        ) from None
    return keras.Model(base.input, features, name=f"{base.name}_to_{config.feature_layer}")


def _download_imagenet(constructor, options: dict, name: str) -> keras.Model:
    """Keras' own download and cache; when it fails, say which file to put where."""
    try:
        return constructor(weights="imagenet", **options)
    except Exception as error:
        url = re.search(r"https?://\S+?\.h5", str(error))
        if url is None:
            raise
        cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights of {name} from {url.group(0)} ({error}). "
            f"Without internet, download that file elsewhere and place it in {cache}/ "
            f"(as {os.path.basename(url.group(0))}), or set model.weights to the path of a "
            "weights file for this architecture."
        ) from error


def load_weights_file(base: keras.Model, path: str, architecture: str) -> None:
    """Loads an HDF5 weights file from any filesystem TensorFlow reads (local, gs://, ...).

    The file must hold this architecture's weights, layer for layer and shape
    for shape; anything else is refused with the first difference found.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"model.weights file {path!r} does not exist.")
    with tempfile.TemporaryDirectory() as local:
        local_path = os.path.join(local, "weights.h5")
        tf.io.gfile.copy(path, local_path)
        if not h5py.is_hdf5(local_path):
            raise WeightsMismatchError(f"model.weights file {path!r} is not an HDF5 weights file.")
        try:
            base.load_weights(local_path)
        except ValueError as error:
            raise WeightsMismatchError(
                f"model.weights file {path!r} does not hold weights for {architecture} "
                f"({base.name}, input {base.input_shape[1:]}): {error}"
            ) from None


def check_base_weights(config: ModelConfig) -> None:
    """Refuses base weights that cannot be had or do not fit the architecture, before any run.

    The Trainer would find out only after the data was ingested and validated.
    ImageNet weights are fetched into Keras' cache now, or their absence explained.
    """
    if config.weights == "none":
        return
    build_base(config.model_copy(update={"feature_layer": None}))
    # Leaves no trace: layer names are numbered per session, and the Trainer may run here next.
    keras.backend.clear_session()


def base_of(model: keras.Model) -> keras.Model:
    """The pretrained network inside the classifier: its only layer that is a model."""
    (base,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return base


# Moving statistics of BatchNormalization layers that fine-tuning trains. Pretrained bases
# use 0.99-0.999, tuned for long runs: in a short one the statistics would lag far behind
# the weights, and the model would be judged (and served) with statistics it never had.
FINE_TUNING_BATCH_NORM_MOMENTUM = 0.9


def unfreeze_top(model: keras.Model, num_layers: int, *, batch_norm: bool) -> None:
    """Makes the top `num_layers` layers of the base trainable; BatchNormalization only if asked."""
    base = base_of(model)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        top = index >= len(base.layers) - num_layers
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = top and (batch_norm or not is_batch_norm)
        if is_batch_norm and layer.trainable:
            layer.momentum = FINE_TUNING_BATCH_NORM_MOMENTUM


# The cross-entropy averaged over the weights, not over the batch (see compile_model).
WEIGHTED_LOSS = "weighted_loss"

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def compile_model(
    model: keras.Model,
    optimizer: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
) -> None:
    """Compiles with a fresh optimizer (adam, rmsprop, sgd); call in strategy scope."""
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        # Weighted: the fill-up examples of a validation pass weigh 0 (trainer/data.py).
        # Keras divides a batch's loss by the batch's size, fill-up included: the weighted
        # cross-entropy divides by the weights, and stands in for val_loss (schedule.py).
        weighted_metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name=WEIGHTED_LOSS),
        ],
    )
