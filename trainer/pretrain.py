"""Training a whole network from scratch: the offline demo's backbone, and its baseline.

Machines without internet cannot download ImageNet weights. The demo instead
pretrains the base once on a source task, sample shapes whose classes are
disjoint from the demo's target classes, and saves the base's weights to a
file, which the pipeline then loads like any user checkpoint
(`model.weights: <path>`). The target task then starts from features learnt
elsewhere, exactly as with ImageNet.

To show what that transfer is worth, `scratch_baseline` trains the same
network from random weights on the target task with the same data, epochs
and batch size as the pipeline's two phases together; the Trainer does the
same on its own train and validation records with `training.compare_scratch`
(`compare_with_scratch`), and exports that network instead when it is the better
of the two on validation.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

from imgclf.imagedata.records import read_labels
from imgclf.imagedata.sample import PRETRAINING_CLASSES, write_sample_dataset
from imgclf.settings.data import DataConfig
from imgclf.settings.model import ModelConfig
from imgclf.settings.training import TrainingConfig
from imgclf.trainer.data import Input, eval_input, train_input
from imgclf.trainer.legacy_keras import keras
from imgclf.trainer.model import (
    base_of,
    build_base,
    build_model,
    compile_model,
    scale_inputs,
    unfreeze_top,
)
from imgclf.trainer.schedule import ACCURACY, MONITOR, kept_epoch, validation_figures

# Under the Trainer's work folder: the best epoch of the network trained from random weights.
SCRATCH_WEIGHTS = "best_scratch"

# No augmentation: the shapes vary enough, and the short runs converge faster without.
_PLAIN = {"random_flip": False, "random_rotation": 0, "random_zoom": 0, "random_contrast": 0}


def pretrain_backbone(
    model: ModelConfig,
    out_path: str,
    classes: Sequence[str] = PRETRAINING_CLASSES,
    train_per_class: int = 1000,
    eval_per_class: int = 30,
    epochs: int = 30,
    learning_rate: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> dict:
    """Trains the whole base on sample shapes and saves its weights (HDF5) at `out_path`.

    The defaults made the demo's bundled backbone (configs/backbones/README.md).
    Returns the source task's final eval accuracy and the time taken.
    """
    if not out_path.endswith(".h5"):
        raise ValueError(f"The backbone weights file must end in .h5, got {out_path!r}.")
    start = time.monotonic()
    training = TrainingConfig(batch_size=batch_size, seed=seed, **_PLAIN)
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "source")
        write_sample_dataset(
            source,
            class_names=classes,
            train_per_class=train_per_class,
            eval_per_class=eval_per_class,
            image_size=model.image_size,
            seed=seed,
        )
        train, evals = _inputs(DataConfig(root=source), model, training)
        base, history = train_from_scratch(
            model, len(classes), train, evals, epochs, training.optimizer, learning_rate
        )
    _save_weights(base, out_path)
    return {
        "classes": list(classes),
        "eval_accuracy": history["val_accuracy"][-1],
        "seconds": time.monotonic() - start,
    }


def scratch_baseline(data: DataConfig, model: ModelConfig, training: TrainingConfig) -> dict:
    """Eval accuracy of the network trained from random weights at the pipeline's budget."""
    start = time.monotonic()
    keras.utils.set_random_seed(training.seed)
    train, evals = _inputs(data, model, training)
    num_classes = len(read_labels(data.labels_path))
    epochs = training.phase1_epochs + training.phase2_epochs
    _, history = train_from_scratch(
        model, num_classes, train, evals, epochs, training.optimizer, training.phase1_learning_rate
    )
    accuracy = history["val_accuracy"][-1]
    return {"eval_accuracy": accuracy, "epochs": epochs, "seconds": time.monotonic() - start}


def compare_with_scratch(
    model: ModelConfig,
    num_classes: int,
    train: Input,
    validation: Input,
    training: TrainingConfig,
    epochs: int,
    work_dir: str,
) -> tuple[keras.Model, dict]:
    """The same classifier from random weights, trained whole for as many epochs as the
    transfer run; returns it with its best epoch's weights, and its record.

    At phase 1's learning rate; its best epoch chosen by the same validation score
    as the transfer model's (trainer/schedule.py), so the Trainer can export the
    better of the two. Call in the Trainer's strategy scope.
    """
    start = time.monotonic()
    classifier = build_model(
        model.model_copy(update={"weights": "none"}), num_classes, batch_norm_learns=True
    )
    unfreeze_top(classifier, len(base_of(classifier).layers), batch_norm=True)
    compile_model(classifier, training.optimizer, training.phase1_learning_rate)
    best = os.path.join(work_dir, SCRATCH_WEIGHTS)
    checkpoint = keras.callbacks.ModelCheckpoint(
        best, monitor=MONITOR, mode="max", save_best_only=True, save_weights_only=True
    )
    history = classifier.fit(
        train.dataset,
        steps_per_epoch=train.steps,
        epochs=epochs,
        validation_data=validation.dataset,
        validation_steps=validation.steps,
        callbacks=[*validation_figures(), checkpoint],
        verbose=0,
    )
    classifier.load_weights(best)
    kept = kept_epoch([{"epochs": history.epoch, "history": history.history}])
    record = {
        "validation_accuracy": kept[ACCURACY],
        "score": kept[MONITOR],
        "epochs": epochs,
        "seconds": time.monotonic() - start,
    }
    logging.info("From random weights: %s", record)
    return classifier, record


def train_from_scratch(
    model: ModelConfig,
    num_classes: int,
    train: Input,
    evals: Input,
    epochs: int,
    optimizer: str,
    learning_rate: float,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Trains base and head together from random weights; returns the base and the history."""
    base = build_base(model.model_copy(update={"weights": "none", "feature_layer": ""}))
    # Many bases move their BatchNormalization statistics slowly (MobileNetV2: momentum
    # 0.999), tuned for long ImageNet runs; a short run would leave them near their
    # initial values, and the frozen base would see wrong statistics when transferred.
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    pixels = keras.Input((model.image_size, model.image_size, 3))
    features = keras.layers.GlobalAveragePooling2D()(base(scale_inputs(pixels, model.base_model)))
    outputs = keras.layers.Dense(num_classes, activation="softmax")(features)
    classifier = keras.Model(pixels, outputs)
    compile_model(classifier, optimizer, learning_rate)
    history = classifier.fit(
        train.dataset,
        steps_per_epoch=train.steps,
        epochs=epochs,
        validation_data=evals.dataset,
        validation_steps=evals.steps,
        verbose=2,
    )
    return base, history.history


def _inputs(data: DataConfig, model: ModelConfig, training: TrainingConfig) -> tuple[Input, Input]:
    train_files = [os.path.join(data.root, data.train_pattern)]
    eval_files = [os.path.join(data.root, data.eval_pattern)]
    train = train_input(train_files, data, model.image_size, training.batch_size, training)
    return train, eval_input(eval_files, data, model.image_size, training.batch_size)


def _save_weights(base: keras.Model, out_path: str) -> None:
    """Writes next to the target and renames, so a crash never leaves a half-written file."""
    directory = os.path.dirname(out_path)
    if directory:
        tf.io.gfile.makedirs(directory)
    partial = out_path + ".partial.h5"
    base.save_weights(partial)
    tf.io.gfile.rename(partial, out_path, overwrite=True)
