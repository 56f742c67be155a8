"""Exporting the trained model as a self-describing SavedModel for TFMA and serving.

Two signatures share one prediction function:

- `serving_default` takes serialized tf.Examples (`examples`): what TFMA feeds.
- `serving_images` takes raw encoded image bytes (`image_bytes`): what clients
  send, base64-encoded in TF Serving's REST API.

Both decode and resize inside the graph, and the input scaling is part of the
Keras model, so a client sends an image file as it is. The class names ship
in the model twice: as a constant behind the `class_names` output and as
`assets/labels.txt` for people and tools.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable, TypeVar

import tensorflow as tf

from imgclf.imagedata.decode import decode_and_resize_batch
from imgclf.settings.data import DataConfig
from imgclf.settings.names import LABELS_FILENAME
from imgclf.trainer.legacy_keras import keras

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "image_bytes"
SUMMARY_FILENAME = "training_summary.json"
# Which network the summary's "exported" names: the one from the pretrained base, or the same
# network trained from random weights (training.compare_scratch), when that did better.
TRANSFER, SCRATCH = "transfer", "scratch"
MAX_PIXELS_KEY = "max_image_pixels"
# Beside the SavedModel, for mobile: the Keras model alone, whose input is float
# pixels in [0, 255] at the model's image size (decoding stays with the app).
TFLITE_DIR = "tflite"
TFLITE_FILE = "model.tflite"
# TF Serving ignores this folder of a SavedModel; files here travel with the model.
EXTRA_ASSETS_DIR = "assets.extra"


def make_signatures(
    model: keras.Model, class_names: list[str], image_size: int, image_key: str, max_pixels: int
) -> dict[str, tf.types.experimental.PolymorphicFunction]:
    names = tf.constant(class_names)

    def predict(encoded_images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = decode_and_resize_batch(encoded_images, image_size, max_pixels)
        probabilities = model(pixels, training=False)
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            "probabilities": probabilities,
            "class_ids": class_ids,
            "class_names": tf.gather(names, class_ids),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(examples):
        features = tf.io.parse_example(examples, {image_key: tf.io.FixedLenFeature([], tf.string)})
        return predict(features[image_key])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(image_bytes):
        return predict(image_bytes)

    # tf.functions with input signatures, not concrete functions: only those can be
    # saved when the variables are distributed (MultiWorkerMirroredStrategy).
    return {SERVING_DEFAULT: serve_examples, SERVING_IMAGES: serve_images}


def export_model(
    model: keras.Model,
    export_dir: str,
    class_names: list[str],
    image_size: int,
    image_key: str,
    summary: dict,
    max_pixels: int,
) -> None:
    """Writes the SavedModel, its labels asset and the training summary.

    The signatures refuse an image of more than `max_pixels` pixels; the summary
    records the bound, so that tools scoring with the model check images first.
    """
    signatures = make_signatures(model, class_names, image_size, image_key, max_pixels)
    with tempfile.TemporaryDirectory() as scratch:
        labels_file = os.path.join(scratch, LABELS_FILENAME)
        with open(labels_file, "w") as f:
            f.writelines(f"{name}\n" for name in class_names)
        # Tracked by the model, the asset is copied into <export_dir>/assets/ on save.
        model.labels_asset = tf.saved_model.Asset(labels_file)
        # Every layer is a built-in Keras layer, so Keras can rebuild the model from its
        # config: skipping the per-layer call traces makes exports about 3x faster.
        model.save(export_dir, signatures=signatures, include_optimizer=False, save_traces=False)
    write_summary(export_dir, {**summary, MAX_PIXELS_KEY: max_pixels})


def export_tflite(model: keras.Model, export_dir: str, class_names: list[str]) -> str:
    """Writes `tflite/model.tflite` and `tflite/labels.txt` in the export; returns the model's path.

    Float32 weights, no quantisation: the predictions match the SavedModel's
    to float rounding (tests/trainer/test_export.py measures it).
    """
    flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    folder = os.path.join(export_dir, TFLITE_DIR)
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, TFLITE_FILE)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(flat)
    with tf.io.gfile.GFile(os.path.join(folder, LABELS_FILENAME), "w") as f:
        f.write("".join(f"{name}\n" for name in class_names))
    return path


def write_summary(export_dir: str, summary: dict) -> None:
    extra = os.path.join(export_dir, EXTRA_ASSETS_DIR)
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, SUMMARY_FILENAME), "w") as f:
        json.dump(summary, f, indent=2)


def read_summary(export_dir: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(export_dir, EXTRA_ASSETS_DIR, SUMMARY_FILENAME)) as f:
        return json.load(f)


class UnloadableModelError(ValueError):
    """A SavedModel TensorFlow cannot load: a damaged or half-copied file."""


# What loading a damaged SavedModel raises: OSError when saved_model.pb does not
# parse, IndexError ("Read less bytes than requested") for a truncated variables
# file, an OpError for a damaged index.
_DAMAGED = (OSError, IndexError, ValueError, tf.errors.OpError)

Loaded = TypeVar("Loaded")


def load_saved_model(model_dir: str, load: Callable[[str], Loaded] = tf.saved_model.load) -> Loaded:
    """`load(model_dir)`; a model that will not load is named as such, not in TensorFlow's
    words from deep inside whatever loaded it."""
    try:
        return load(model_dir)
    except _DAMAGED as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnloadableModelError(
            f"The model in {model_dir} cannot be loaded ({reason}): a damaged or half-copied "
            "file? If it is a served version, move it out of the serving folder: TF Serving "
            "cannot load it either, and imgclf then uses the newest version before it."
        ) from error


def max_pixels_of(export_dir: str) -> int:
    """The largest image the model's signatures accept; for a model exported before
    they were bounded, the configuration's default."""
    return read_summary(export_dir).get(
        MAX_PIXELS_KEY, DataConfig.model_fields["max_image_pixels"].default
    )
