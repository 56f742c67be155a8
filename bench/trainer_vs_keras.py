"""The project's training input and model against hand-written Keras, images/s per phase.

Both train the demo's network (MobileNetV2, width 0.35) on the same generated
JPEG records, image size, batch and augmentation. The baseline is what the
keras.io transfer-learning guide and the tf.data performance guide would
write: parallel reads and decodes, batch-level augmentation, prefetch. The
two alternate, round after round, so that whatever else the machine does
falls on both; the first round (tracing) is left out. Goal: project /
baseline >= 0.95 in both phases.

    .venv/bin/python -m bench.trainer_vs_keras [--image-size 96] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import tensorflow as tf
import tf_keras as keras

from bench.workload import (
    NUM_CLASSES,
    demo_model,
    demo_training,
    generated_data,
    images_per_second,
    machine,
    split_files,
)
from imgclf.trainer.data import train_input
from imgclf.trainer.model import build_model, compile_model, unfreeze_top

GOAL = 0.95


def baseline_dataset(files: list[str], image_size: int, batch: int, training) -> tf.data.Dataset:
    def parse(record):
        example = tf.io.parse_single_example(
            record,
            {
                "image": tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.FixedLenFeature([], tf.int64),
            },
        )
        image = tf.io.decode_image(example["image"], channels=3, expand_animations=False)
        return tf.image.resize(image, [image_size, image_size]), example["label"]

    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(training.random_rotation),
            keras.layers.RandomZoom(training.random_zoom),
            keras.layers.RandomContrast(training.random_contrast),
        ]
    )
    names = tf.io.gfile.glob(files[0])
    compression = "GZIP" if names[0].endswith(".gz") else ""
    return (
        tf.data.TFRecordDataset(names, compression, num_parallel_reads=tf.data.AUTOTUNE)
        .shuffle(1024)
        .repeat()
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch, drop_remainder=True)
        .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def baseline_model(image_size: int, alpha: float) -> tuple[keras.Model, keras.Model]:
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), include_top=False, weights=None, alpha=alpha
    )
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs, outputs), base


def baseline_fine_tuning(model: keras.Model, base: keras.Model, layers: int, rate: float) -> None:
    base.trainable = True
    for layer in base.layers[:-layers]:
        layer.trainable = False
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    compile_baseline(model, rate)


def compile_baseline(model: keras.Model, rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def alternate(runs: dict, rounds: int) -> dict[str, list[float]]:
    """Each contender's images/s per round, the order flipped every round; round 0 dropped."""
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(rounds + 1):
        for name in names if round_ % 2 == 0 else names[::-1]:
            speed = runs[name]()
            if round_:
                speeds[name].append(speed)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=32, help="Training steps per measurement.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    training = demo_training()
    model_config = demo_model(args.image_size)
    batch = training.batch_size
    with tempfile.TemporaryDirectory() as scratch:
        data = generated_data(f"{scratch}/data", args.images, args.image_size)
        files = split_files(data, "train")
        project_input = train_input(files, data, args.image_size, batch, training).dataset
        project = build_model(model_config, NUM_CLASSES, batch_norm_learns=False)
        baseline, baseline_base = baseline_model(args.image_size, model_config.alpha)
        base_input = baseline_dataset(files, args.image_size, batch, training)

        print(f"Machine: {machine()}")
        print(
            f"Workload: MobileNetV2 (alpha {model_config.alpha}) at {args.image_size} px, "
            f"batch {batch}, {args.images} JPEG images, {args.steps} steps a measurement, "
            f"{args.rounds} rounds after a warm-up"
        )
        print(f"{'phase':18} {'project img/s':>14} {'keras img/s':>12} {'ratio':>7}  goal {GOAL}")
        compile_model(project, training.optimizer, training.phase1_learning_rate)
        compile_baseline(baseline, training.phase1_learning_rate)
        report(
            "feature extraction",
            alternate(
                {
                    "project": lambda: images_per_second(project, project_input, args.steps, batch),
                    "keras": lambda: images_per_second(baseline, base_input, args.steps, batch),
                },
                args.rounds,
            ),
        )
        unfreeze_top(project, training.fine_tune_layers, batch_norm=False)
        compile_model(project, training.optimizer, training.fine_tune_learning_rate)
        baseline_fine_tuning(
            baseline, baseline_base, training.fine_tune_layers, training.fine_tune_learning_rate
        )
        report(
            "fine-tuning",
            alternate(
                {
                    "project": lambda: images_per_second(project, project_input, args.steps, batch),
                    "keras": lambda: images_per_second(baseline, base_input, args.steps, batch),
                },
                args.rounds,
            ),
        )


def report(phase: str, speeds: dict[str, list[float]]) -> None:
    project = statistics.median(speeds["project"])
    keras_ = statistics.median(speeds["keras"])
    ratio = project / keras_
    verdict = "meets" if ratio >= GOAL else "misses"
    print(f"{phase:18} {project:14.0f} {keras_:12.0f} {ratio:7.3f}  {verdict} the goal")


if __name__ == "__main__":
    main()
