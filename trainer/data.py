"""The training input: records to decoded, resized, batched images with labels."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from imagedata.decode import decode_and_resize
from pipeline.config import DataConfig, TrainingConfig

# ExampleGen writes its splits as GZIP-compressed TFRecord files.
EXAMPLE_GEN_COMPRESSION = "GZIP"


def train_dataset(
    file_patterns: list[str],
    data: DataConfig,
    image_size: int,
    global_batch_size: int,
    training: TrainingConfig,
) -> tf.data.Dataset:
    """Shuffled, augmented batches of (float pixels in [0, 255], integer label)."""
    records = _records(file_patterns).shuffle(
        training.shuffle_buffer, seed=training.seed, reshuffle_each_iteration=True
    )
    augment = make_augmentation(training)
    return (
        _decode(records, data, image_size)
        .batch(global_batch_size)
        .map(
            lambda images, labels: (augment(images, training=True), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(
    file_patterns: list[str], data: DataConfig, image_size: int, global_batch_size: int
) -> tf.data.Dataset:
    """Batches of (float pixels in [0, 255], integer label), in file order."""
    records = _records(file_patterns)
    return _decode(records, data, image_size).batch(global_batch_size).prefetch(tf.data.AUTOTUNE)


def make_augmentation(config: TrainingConfig) -> keras.Sequential:
    """Random flips, rotations, zooms and contrast; an identity when all are off."""
    layers = []
    if config.random_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=config.seed))
    if config.random_rotation:
        layers.append(keras.layers.RandomRotation(config.random_rotation, seed=config.seed))
    if config.random_zoom:
        layers.append(keras.layers.RandomZoom(config.random_zoom, seed=config.seed))
    if config.random_contrast:
        layers.append(keras.layers.RandomContrast(config.random_contrast, seed=config.seed))
    return keras.Sequential(layers, name="augmentation")


def _records(file_patterns: list[str]) -> tf.data.Dataset:
    files = sorted(name for pattern in file_patterns for name in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No example files match {file_patterns}.")
    return tf.data.TFRecordDataset(files, compression_type=EXAMPLE_GEN_COMPRESSION)


def _decode(records: tf.data.Dataset, data: DataConfig, image_size: int) -> tf.data.Dataset:
    """Parses and decodes in parallel; the last, smaller batch is kept by the callers.

    MirroredStrategy splits a short last batch unevenly across replicas
    rather than losing its examples.
    """
    features = {
        data.image_key: tf.io.FixedLenFeature([], tf.string),
        data.label_key: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(serialized, features)
        return decode_and_resize(example[data.image_key], image_size), example[data.label_key]

    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
