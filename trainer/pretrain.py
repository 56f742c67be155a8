"""Pretraining a small base network offline, so the demo transfers without ImageNet.

Machines without internet cannot download ImageNet weights. The demo instead
pretrains the base once on a source task, sample shapes whose classes are
disjoint from the demo's target classes, and saves the base's weights to a
file, which the pipeline then loads like any user checkpoint
(`model.weights: <path>`). The target task then starts from features learnt
elsewhere, exactly as with ImageNet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from imagedata.decode import decode_image
from imagedata.sample import PRETRAINING_CLASSES, generate_split
from pipeline.config import ModelConfig
from trainer.model import build_base, compile_model, scale_inputs


def pretrain_backbone(
    model: ModelConfig,
    out_path: str,
    classes: Sequence[str] = PRETRAINING_CLASSES,
    train_per_class: int = 300,
    eval_per_class: int = 30,
    epochs: int = 12,
    learning_rate: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> dict:
    """Trains the whole base from scratch on sample shapes and saves its weights (HDF5).

    Returns the source task's final accuracies and the time taken.
    """
    start = time.monotonic()
    keras.utils.set_random_seed(seed)
    train_images, train_labels = _sample_arrays(classes, "train", train_per_class, model, seed)
    eval_images, eval_labels = _sample_arrays(classes, "eval", eval_per_class, model, seed)

    base = build_base(model.model_copy(update={"weights": "none"}))
    # Many bases move their BatchNormalization statistics slowly (MobileNetV2: momentum
    # 0.999), tuned for long ImageNet runs; a short run would leave them near their
    # initial values, and the frozen base would see wrong statistics when transferred.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    pixels = keras.Input(train_images.shape[1:])
    features = keras.layers.GlobalAveragePooling2D()(base(scale_inputs(pixels, model.base_model)))
    outputs = keras.layers.Dense(len(classes), activation="softmax")(features)
    classifier = keras.Model(pixels, outputs)
    compile_model(classifier, learning_rate)
    history = classifier.fit(
        train_images,
        train_labels,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(eval_images, eval_labels),
        verbose=2,
    )
    _save_weights(base, out_path)
    return {
        "classes": list(classes),
        "train_accuracy": history.history["accuracy"][-1],
        "eval_accuracy": history.history["val_accuracy"][-1],
        "seconds": time.monotonic() - start,
    }


def _sample_arrays(classes, split, per_class, model: ModelConfig, seed):
    records = list(generate_split(classes, split, per_class, size=model.image_size, seed=seed))
    images = np.stack([decode_image(record.image).numpy() for record in records])
    return images.astype(np.float32), np.array([record.label for record in records])


def _save_weights(base: keras.Model, out_path: str) -> None:
    """Writes next to the target and renames, so a crash never leaves a half-written file."""
    if not out_path.endswith(".h5"):
        raise ValueError(f"The backbone weights file must end in .h5, got {out_path!r}.")
    directory = os.path.dirname(out_path)
    if directory:
        tf.io.gfile.makedirs(directory)
    partial = out_path + ".partial.h5"
    base.save_weights(partial)
    tf.io.gfile.rename(partial, out_path, overwrite=True)
