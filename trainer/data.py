"""The training input: records to decoded, resized, batched images with labels.

Both splits repeat and are cut into full global batches, and an epoch is a
fixed number of steps: every replica on every worker then gets a whole batch
at every step, so none waits for a last, short batch that only some have.
The strategy shards the data by element (DATA), so workers see disjoint
examples however many files the split has.

When the data has no validation split, one is carved out of train (`Part`):
by a fingerprint of each image's bytes, so an image is on the same side in
every run, every span and on every worker, and validation images never train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from imgclf.imagedata.decode import decode_and_resize
from imgclf.settings.data import DataConfig
from imgclf.settings.training import TrainingConfig
from imgclf.trainer.legacy_keras import keras

# Resolution of the holdout share: an image's fingerprint picks one of this many buckets.
HASH_BUCKETS = 10_000


@dataclass(frozen=True)
class Part:
    """One side of a split divided by a stable hash of each image: validation, or the rest."""

    validation_fraction: float
    image_key: str
    validation: bool
    widened_from: float | None = None  # the configured fraction, when it held too few images

    def keeps(self, serialized: tf.Tensor) -> tf.Tensor:
        image = tf.io.parse_single_example(
            serialized, {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        )[self.image_key]
        # FarmHash's Fingerprint64: the same bucket on every machine and TensorFlow version.
        bucket = tf.strings.to_hash_bucket_fast(image, HASH_BUCKETS)
        held_out = bucket < round(self.validation_fraction * HASH_BUCKETS)
        return held_out if self.validation else tf.logical_not(held_out)

    def describe(self) -> str:
        share = self.validation_fraction if self.validation else 1 - self.validation_fraction
        said = f"{share:.0%} of it by image hash"
        if self.widened_from is None:
            return said
        return said + (
            f" (validation widened from {self.widened_from:.0%}, which held too few images "
            "to choose epochs by: training.min_validation_images)"
        )

    def remedy(self) -> str:
        """What to change when this part holds no records."""
        if self.validation:
            return (
                "too few records to hold out a validation share: raise "
                "training.validation_fraction, or give the data a validation split of its own "
                "(data.validation_pattern)"
            )
        return "lower training.validation_fraction"


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
    part: Part | None = None,
) -> Input:
    """Shuffled, augmented batches of (float pixels in [0, 255], integer label)."""
    files = _files(file_patterns)
    examples = count_records(files, part)
    records = shuffled(_read(files, part), examples, training)
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
    part: Part | None = None,
) -> Input:
    """Batches of (float pixels, integer label, weight) in file order; a pass is `steps` batches.

    Each pass counts every example once: the last batch is filled up with
    copies of the first example at weight 0, which no loss or metric counts.
    """
    files = _files(file_patterns)
    examples = count_records(files, part)
    images = _decode(_read(files, part), data, image_size)
    return weighted_passes(images, examples, global_batch_size)


def weighted_passes(elements: tf.data.Dataset, examples: int, batch_size: int) -> Input:
    """Endless passes over (x, label) as whole batches of (x, label, weight); see eval_input."""
    steps = math.ceil(examples / batch_size)
    weighted = elements.map(lambda x, label: (x, label, tf.constant(1.0)))
    filler = (
        elements.take(1)
        .map(lambda x, label: (x, label, tf.constant(0.0)))
        .repeat(steps * batch_size - examples)
    )
    dataset = weighted.concatenate(filler).batch(batch_size, drop_remainder=True).repeat()
    return Input(finish(dataset), steps, examples, batch_size)


def shuffled(elements: tf.data.Dataset, examples: int, training: TrainingConfig) -> tf.data.Dataset:
    """Endlessly repeated, reshuffled each pass.

    The order depends only on the seed, the buffer and the element count, not
    on what the elements are: records and the features cached from them in
    the same order are shuffled alike.
    """
    return elements.shuffle(min(training.shuffle_buffer, examples), seed=training.seed).repeat()


def images_in_file_order(
    file_patterns: list[str], data: DataConfig, image_size: int, part: Part | None = None
) -> tuple[tf.data.Dataset, int]:
    """One pass of (pixels, label), unbatched, in file order; and how many there are."""
    files = _files(file_patterns)
    return _decode(_read(files, part), data, image_size), count_records(files, part)


def first_records(file_patterns: list[str], count: int, part: Part | None = None) -> list[bytes]:
    """The first `count` serialized records, in file order."""
    return [record.numpy() for record in _read(_files(file_patterns), part).take(count)]


def label_counts(
    file_patterns: list[str], label_key: str, num_classes: int, part: Part | None = None
) -> list[int]:
    """How many records of each class, in label order."""
    label = {label_key: tf.io.FixedLenFeature([], tf.int64)}
    labels = _read(_files(file_patterns), part).map(
        lambda record: tf.io.parse_single_example(record, label)[label_key]
    )
    counts = labels.reduce(
        tf.zeros([num_classes], tf.int64),
        lambda counts, label: counts + tf.one_hot(label, num_classes, dtype=tf.int64),
    )
    return [int(count) for count in counts]


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


def count_examples(file_patterns: list[str]) -> int:
    """How many records the files matching `file_patterns` hold."""
    return count_records(_files(file_patterns))


def count_records(files: list[str], part: Part | None = None) -> int:
    """Counts records (in TensorFlow's C++ loop; parsing only the images a part is chosen by)."""
    count = int(_read(files, part).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if count == 0:
        where = f" ({part.describe()}): {part.remedy()}" if part else ""
        raise ValueError(f"No records in {files}{where}.")
    return count


def _files(file_patterns: list[str]) -> list[str]:
    files = sorted(name for pattern in file_patterns for name in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No example files match {file_patterns}.")
    return files


def _read(files: list[str], part: Part | None = None) -> tf.data.Dataset:
    """TFRecord files, GZIP-compressed when named *.gz (as ExampleGen writes them)."""
    compressed = {name.endswith(".gz") for name in files}
    if len(compressed) > 1:
        raise ValueError(f"Some but not all of {files} are *.gz: mixed compression.")
    records = tf.data.TFRecordDataset(files, compression_type="GZIP" if compressed.pop() else "")
    return records.filter(part.keeps) if part else records


def _decode(records: tf.data.Dataset, data: DataConfig, image_size: int) -> tf.data.Dataset:
    features = {
        data.image_key: tf.io.FixedLenFeature([], tf.string),
        data.label_key: tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(serialized, features)
        pixels = decode_and_resize(example[data.image_key], image_size, data.max_image_pixels)
        return pixels, example[data.label_key]

    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
