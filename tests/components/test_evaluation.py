"""The blessing bars, through TFMA itself: a model that never finds a class is not blessed."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tf_keras as keras

from imgclf.components.evaluation import (
    ACCURACY,
    CANDIDATE,
    balanced_accuracy,
    make_eval_config,
    read_failures,
    read_metrics,
)
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.checks import EvaluationConfig
from imgclf.settings.data import DataConfig
from imgclf.trainer.export import export_model
from imgclf.trainer.model import OUTPUT_NAME
from quick_training import MAX_PIXELS

SIZE = 32


def _always(label: int) -> keras.Model:
    """A classifier that answers `label` whatever the image."""
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D()(pixels)
    bias = np.zeros(len(DEFAULT_CLASSES), np.float32)
    bias[label] = 10.0
    dense = keras.layers.Dense(len(DEFAULT_CLASSES), activation="softmax", name=OUTPUT_NAME)
    model = keras.Model(pixels, dense(pooled))
    dense.set_weights([np.zeros((3, len(DEFAULT_CLASSES)), np.float32), bias])
    return model


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory):
    """Test images: 9 of class 0, 1 of each other class; the model only ever answers class 0."""
    root = tmp_path_factory.mktemp("evaluation")
    records = list(generate_split(DEFAULT_CLASSES, "eval", 9, size=SIZE))
    chosen = [r for r in records if r.label == 0] + [
        next(r for r in records if r.label == label) for label in (1, 2, 3)
    ]
    examples = str(root / "eval.tfrecord")
    with tf.io.TFRecordWriter(examples) as writer:
        for record in chosen:
            writer.write(to_example(record).SerializeToString())
    model_dir = str(root / "model")
    export_model(_always(0), model_dir, list(DEFAULT_CLASSES), SIZE, "image", {}, MAX_PIXELS)
    config = make_eval_config(EvaluationConfig(min_accuracy=0.5), DataConfig(), 4)
    output = str(root / "evaluation")
    tfma.run_model_analysis(
        # A first model, as TFX's Evaluator runs it without a baseline: absolute bars only.
        eval_shared_model=tfma.default_eval_shared_model(
            model_dir, eval_config=config, rubber_stamp=True
        ),
        eval_config=config,
        data_location=examples,
        output_path=output,
    )
    return output


@pytest.mark.slow
def test_reading_an_evaluation_shows_no_deprecation_notes_of_tensorflow(collapsed):
    # In a process of its own: TensorFlow logs a deprecation once per process.
    read = (
        "import sys, imgclf; from imgclf.components.evaluation import read_confusion_matrix, "
        "read_failures, read_metrics; "
        "read_metrics(sys.argv[1], 'label'); read_failures(sys.argv[1]); "
        "read_confusion_matrix(sys.argv[1], 4)"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="1")
    command = [sys.executable, "-c", read, collapsed]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deprecated" not in done.stderr


@pytest.mark.slow
def test_a_collapsed_class_is_not_blessed_though_overall_accuracy_passes(collapsed):
    metrics = read_metrics(collapsed, "label")[CANDIDATE]
    assert metrics.overall[ACCURACY] == pytest.approx(0.75)  # above the 0.5 bar
    assert metrics.accuracy_by_label == pytest.approx({0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0})
    assert balanced_accuracy(metrics) == pytest.approx(0.25)
    blessed, failures = read_failures(collapsed, list(DEFAULT_CLASSES))
    assert not blessed
    assert sorted(failures) == [
        f"recall of class {name!r} 0.000 is below the minimum 0.100"
        for name in sorted(DEFAULT_CLASSES[1:])
    ]
