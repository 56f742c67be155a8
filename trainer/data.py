"""The training input: records to decoded, resized, batched images with labels.

Both splits repeat and are cut into full global batches, and an epoch is a
fixed number of steps: every replica on every worker then gets a whole batch
at every step, so none waits for a last, short batch that only some have.
The strategy shards the data by element (DATA), so workers see disjoint
examples however many files the split has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf
import tf_keras as keras

from imgclf.imagedata.decode import decode_and_resize
from imgclf.settings.config import DataConfig, TrainingConfig


@dataclass
class Input:
    """An endless dataset of global batches, and how many steps make one pass over the split."""

    dataset: tf.data.Dataset
    steps: int
    examples: int
    batch_size: int


def train_input(
    file_patterns: list[str],
    data: DataConfig,
    image_size: int,
    global_batch_size: int,
    training: TrainingConfig,
) -> Input:
    """Shuffled, augmented batches of (float pixels in [0, 255], integer label)."""
    files = _files(file_patterns)
    examples = count_records(files)
    records = shuffled(_read(files), examples, training)
    augment = make_augmentation(training)
    dataset = (
        _decode(records, data, image_size)
        .batch(global_batch_size, drop_remainder=True)
        .map(
            lambda images, labels: (augment(images, training=True), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    )
    steps = training.steps_per_epoch or math.ceil(examples / global_batch_size)
    return Input(finish(dataset), steps, examples, global_batch_size)


def eval_input(
    file_patterns: list[str],
    data: DataConfig,
    image_size: int,
    global_batch_size: int,
) -> Input:
    """Batches of (float pixels, integer label) in file order; one pass is `steps` batches.

    The last batch of a pass is filled up from the start of the split, so
    validation metrics may count up to one batch of examples twice.
    """
    files = _files(file_patterns)
    examples = count_records(files)
    records = _read(files).repeat()
    dataset = _decode(records, data, image_size).batch(global_batch_size, drop_remainder=True)
    steps = math.ceil(examples / global_batch_size)
    return Input(finish(dataset), steps, examples, global_batch_size)


def shuffled(elements: tf.data.Dataset, examples: int, training: TrainingConfig) -> tf.data.Dataset:
    """Endlessly repeated, reshuffled each pass.

    The order depends only on the seed, the buffer and the element count, not
    on what the elements are: records and the features cached from them in
    the same order are shuffled alike.
    """
    return elements.shuffle(min(training.shuffle_buffer, examples), seed=training.seed).repeat()


def images_in_file_order(
    file_patterns: list[str], data: DataConfig, image_size: int
) -> tuple[tf.data.Dataset, int]:
    """One pass of (pixels, label), unbatched, in file order; and how many there are."""
    files = _files(file_patterns)
    return _decode(_read(files), data, image_size), count_records(files)


def first_records(file_patterns: list[str], count: int) -> list[bytes]:
    """The first `count` serialized records, in file order."""
    return [record.numpy() for record in _read(_files(file_patterns)).take(count)]


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


def count_records(files: list[str]) -> int:
    """Counts records without parsing them (a read of the files, in TensorFlow's C++ loop)."""
    count = int(_read(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if count == 0:
        raise ValueError(f"No records in {files}.")
    return count


def _files(file_patterns: list[str]) -> list[str]:
    files = sorted(name for pattern in file_patterns for name in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No example files match {file_patterns}.")
    return files


def _read(files: list[str]) -> tf.data.Dataset:
    """TFRecord files, GZIP-compressed when named *.gz (as ExampleGen writes them)."""
    compressed = {name.endswith(".gz") for name in files}
    if len(compressed) > 1:
        raise ValueError(f"Some but not all of {files} are *.gz: mixed compression.")
    return tf.data.TFRecordDataset(files, compression_type="GZIP" if compressed.pop() else "")


def _decode(records: tf.data.Dataset, data: DataConfig, image_size: int) -> tf.data.Dataset:
    features = {
        data.image_key: tf.io.FixedLenFeature([], tf.string),
        data.label_key: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(serialized, features)
        return decode_and_resize(example[data.image_key], image_size), example[data.label_key]

    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
