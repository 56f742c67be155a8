"""What the benchmarks train: generated sample shapes and the demo's network, timed by step."""

from __future__ import annotations

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import os
import platform
import time

import tensorflow as tf
import tf_keras as keras

from imgclf.imagedata.sample import write_sample_dataset
from imgclf.settings.data import DataConfig
from imgclf.settings.model import ModelConfig
from imgclf.settings.training import TrainingConfig

NUM_CLASSES = 4  # the sample shapes
NO_AUGMENTATION = {
    "random_flip": False,
    "random_rotation": 0.0,
    "random_zoom": 0.0,
    "random_contrast": 0.0,
}


def generated_data(
    out_dir: str, train_images: int, image_size: int, eval_images: int = 64
) -> DataConfig:
    """Sample shapes as the pipeline's records (JPEG, 4 shards), written once per folder."""
    if not os.path.exists(out_dir):
        write_sample_dataset(
            out_dir,
            train_per_class=train_images // NUM_CLASSES,
            eval_per_class=max(1, eval_images // NUM_CLASSES),
            image_size=image_size,
            image_format="jpeg",
            num_shards=4,
        )
    return DataConfig(root=out_dir)


def split_files(data: DataConfig, split: str) -> list[str]:
    return [os.path.join(data.root, split, "*")]


def demo_model(image_size: int) -> ModelConfig:
    """The demo's network (MobileNetV2, width 0.35); random weights run as fast as trained ones."""
    return ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=image_size, weights="none")


def demo_training(**overrides) -> TrainingConfig:
    return TrainingConfig(**{"batch_size": 32, "fine_tune_layers": 100, **overrides})


class StepTimer(keras.callbacks.Callback):
    """Seconds of training steps in each epoch: from the first step's start to the last's end."""

    def __init__(self):
        super().__init__()
        self.epoch_seconds: list[float] = []
        self._first = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._first = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if not self._first:
            self._first = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(self._last - self._first)


def images_per_second(
    model: keras.Model, dataset: tf.data.Dataset, steps: int, batch: int
) -> float:
    """One epoch of `steps` batches; the model's first fit after compiling includes tracing."""
    timer = StepTimer()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, callbacks=[timer], verbose=0)
    return steps * batch / timer.epoch_seconds[-1]


def machine() -> str:
    cpus = os.cpu_count()
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (
        f"{platform.processor() or platform.machine()}, {cpus} CPU cores, {gpus} GPUs, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )
