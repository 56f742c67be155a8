"""Phase 1 on cached features: the frozen base sees each image once, not once every epoch.

In feature extraction only the head learns. The base, frozen and in inference
mode, turns an image into the same features every epoch, and it is almost all
of the compute. So the base runs once over the train and validation images
(over `cached_views` augmented views of each train image when augmenting),
the pooled features are kept, and the head trains on them. The features stay in
memory while each split's fit in `feature_cache_memory_mb`, else they go to
TFRecord files in the Trainer's work directory and stream from there.

The head is the classifier's own layers above the pooling, so training it
trains the full model's head, ready for fine-tuning. Cached features are
shuffled, batched and repeated exactly as the images would have been, so with
augmentation off the head sees the same examples in the same order.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from absl import logging

from imgclf.settings.data import DataConfig
from imgclf.settings.training import TrainingConfig
from imgclf.trainer.data import (
    Input,
    Part,
    finish,
    images_in_file_order,
    make_augmentation,
    shuffled,
    weighted_passes,
)
from imgclf.trainer.legacy_keras import keras
from imgclf.trainer.model import POOLING_NAME

FEATURES_KEY = "features"
LABEL_KEY = "label"


@dataclass
class CachedPhase1:
    head: keras.Model  # shares its layers with the full classifier
    train: Input
    evals: Input
    seconds: float  # spent computing the features


def head_of(model: keras.Model) -> keras.Model:
    """The classifier's layers above the pooled features, as a model of their own."""
    return keras.Model(model.get_layer(POOLING_NAME).output, model.output, name="head")


def feature_extractor(model: keras.Model) -> keras.Model:
    """Pixels to pooled features: the input scaling and the frozen base, in inference mode."""
    return keras.Model(model.input, model.get_layer(POOLING_NAME).output, name="features")


def cache_phase1(
    model: keras.Model,
    train_files: list[str],
    eval_files: list[str],
    data: DataConfig,
    training: TrainingConfig,
    train: Input,
    evals: Input,
    cache_dir: str,
    train_part: Part | None = None,
    eval_part: Part | None = None,
) -> CachedPhase1:
    """Computes the features once; `train` and `evals` give the batching to reproduce.

    `train_part` and `eval_part`: the parts of the files that `train` and `evals` read.
    """
    started = time.perf_counter()
    image_size = model.input_shape[1]
    extract = _traced_once(feature_extractor(model))
    augment = make_augmentation(training) if training.augments else None
    views = training.cached_views if augment else 1
    store = _Store(cache_dir, budget=training.feature_cache_memory_mb * 2**20)

    train_images, train_count = images_in_file_order(train_files, data, image_size, train_part)
    train_features = store.keep(
        "train",
        (
            batch
            for _ in range(views)
            for batch in _features(extract, train_images, train.batch_size, augment)
        ),
    )
    eval_images, eval_count = images_in_file_order(eval_files, data, image_size, eval_part)
    eval_features = store.keep("eval", _features(extract, eval_images, evals.batch_size))

    batch = train.batch_size
    cached_train = shuffled(train_features, train_count * views, training)
    seconds = time.perf_counter() - started
    logging.info(
        "Cached phase-1 features of %d train (%d view(s)) and %d validation images in %.1f s.",
        train_count,
        views,
        eval_count,
        seconds,
    )
    return CachedPhase1(
        head=head_of(model),
        train=Input(
            finish(cached_train.batch(batch, drop_remainder=True)), train.steps, train_count, batch
        ),
        evals=weighted_passes(eval_features, eval_count, evals.batch_size),
        seconds=seconds,
    )


def _traced_once(extractor: keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """The extractor as one graph for any batch size: traced per batch shape instead (full
    batches, each split's last), MobileNetV2 at 64 px took 19 s where this takes 3."""
    pixels = tf.TensorSpec([None, *extractor.input_shape[1:]], extractor.input.dtype)
    return tf.function(lambda batch: extractor(batch, training=False), input_signature=[pixels])


def _features(
    extract, images: tf.data.Dataset, batch_size: int, augment: keras.Model | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) batch by batch, in the images' order."""
    for pixels, labels in images.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        if augment is not None:
            pixels = augment(pixels, training=True)
        yield tf.cast(extract(pixels), tf.float32).numpy(), labels.numpy()


class _Store:
    """Keeps each split's features in memory while they fit the budget, else in TFRecords."""

    def __init__(self, directory: str, budget: int):
        self._directory = directory
        self._budget = budget

    def keep(self, split: str, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> tf.data.Dataset:
        kept_features, kept_labels, size = [], [], 0
        for features, labels in batches:
            kept_features.append(features)
            kept_labels.append(labels)
            size += features.nbytes
            if size > self._budget:
                return self._to_files(split, kept_features, kept_labels, batches)
        return tf.data.Dataset.from_tensor_slices(
            (np.concatenate(kept_features), np.concatenate(kept_labels))
        )

    def _to_files(self, split, kept_features, kept_labels, rest) -> tf.data.Dataset:
        tf.io.gfile.makedirs(self._directory)
        path = os.path.join(self._directory, f"{split}_features.tfrecord")
        partial = path + ".partial"
        dimension = kept_features[0].shape[1]
        with tf.io.TFRecordWriter(partial) as writer:
            for features, labels in itertools.chain(
                zip(kept_features, kept_labels, strict=True), rest
            ):
                for vector, label in zip(features, labels, strict=True):
                    writer.write(_example(vector, label))
        tf.io.gfile.rename(partial, path, overwrite=True)
        logging.info("Phase-1 %s features exceed the memory budget: streaming %s.", split, path)
        spec = {
            FEATURES_KEY: tf.io.FixedLenFeature([dimension], tf.float32),
            LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        }
        return tf.data.TFRecordDataset(path).map(
            lambda record: _parsed(record, spec), num_parallel_calls=tf.data.AUTOTUNE
        )


def _example(vector: np.ndarray, label: np.int64) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                FEATURES_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=vector)),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
        )
    ).SerializeToString()


def _parsed(record: tf.Tensor, spec: dict) -> tuple[tf.Tensor, tf.Tensor]:
    parsed = tf.io.parse_single_example(record, spec)
    return parsed[FEATURES_KEY], parsed[LABEL_KEY]
