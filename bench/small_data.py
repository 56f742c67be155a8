"""Real data of a few hundred to a few thousand images: the model the Trainer exports, scored
on the test split with its 95% interval, beside a classical baseline on the same split.

Two real datasets, written as class folders and converted as a user's would be:
- `cifar10`: the CIFAR-10 subset in ../shared/fixtures (128 train and 128 test
  32x32 photos, 10 classes; needs ../shared beside the project);
- `digits`: scikit-learn's bundled handwritten digits (1,437 train and 360 test
  8x8 grayscale images, 10 classes; bench/transfer_vs_scratch.py's split).
For each: the Trainer's `run_fn` with the demo's settings (its bundled shapes
backbone, `training.compare_scratch` on), the exported model's test accuracy
with its Wilson interval and which network was exported, the validation
accuracies of transfer and scratch, and an RBF support vector machine on the
standardized raw pixels (scikit-learn's defaults) on the same split.

    .venv/bin/python -m bench.small_data [--dataset cifar10] [--set NAME=VALUE]

To compare two commits, run it with PYTHONPATH set to a checkout of the other.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bench.transfer_vs_scratch import test_accuracy, train_on_folders, write_digit_folders
from bench.workload import machine
from imgclf.settings.config import parse_assignment
from imgclf.settings.names import EVAL_SPLIT, TRAIN_SPLIT
from imgclf.trainer.confidence import with_interval
from imgclf.trainer.export import read_summary
from imgclf.trainer.schedule import kept_accuracy

CIFAR10 = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "fixtures", "cifar10_tfx_subset"
)
CIFAR10_FILES = {
    TRAIN_SPLIT: "train/cifar10_train.tfrecord",
    EVAL_SPLIT: "eval/cifar10_test.tfrecord",
}


def write_cifar10_folders(root: str) -> None:
    """<root>/{train,eval}/<class>/<id>.png from the fixture's records (PNG bytes as they are)."""
    with open(os.path.join(CIFAR10, "labels.txt")) as f:
        classes = f.read().split()
    for split, name in CIFAR10_FILES.items():
        for record in tf.data.TFRecordDataset(os.path.join(CIFAR10, name)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            folder = os.path.join(root, split, classes[feature["label"].int64_list.value[0]])
            os.makedirs(folder, exist_ok=True)
            identity = feature["id"].bytes_list.value[0].decode()
            with open(os.path.join(folder, f"{identity}.png"), "wb") as out:
                out.write(feature["image"].bytes_list.value[0])


DATASETS = {"cifar10": write_cifar10_folders, "digits": write_digit_folders}


def pixels_and_labels(split_folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a split as a flat vector of its pixels, and its class folder's name."""
    vectors, labels = [], []
    for label in sorted(os.listdir(split_folder)):
        for name in sorted(os.listdir(os.path.join(split_folder, label))):
            with Image.open(os.path.join(split_folder, label, name)) as image:
                vectors.append(np.asarray(image, dtype=np.float32).ravel())
            labels.append(label)
    return np.stack(vectors), np.array(labels)


def classical_baseline(folders: str) -> float:
    """Test accuracy of an RBF SVM (scikit-learn's defaults) on standardized raw pixels."""
    train_x, train_y = pixels_and_labels(os.path.join(folders, TRAIN_SPLIT))
    test_x, test_y = pixels_and_labels(os.path.join(folders, EVAL_SPLIT))
    classifier = make_pipeline(StandardScaler(), SVC()).fit(train_x, train_y)
    return float(np.mean(classifier.predict(test_x) == test_y))


def measure(dataset: str, overrides: dict) -> dict:
    work = tempfile.mkdtemp(prefix=f"small_data_{dataset}_")
    folders = f"{work}/folders"
    DATASETS[dataset](folders)
    fn_args, _, seconds = train_on_folders(
        folders, work, {"training.phase2_epochs": 40, **overrides}
    )
    summary = read_summary(fn_args.serving_model_dir)
    test_images = sum(len(files) for _, _, files in os.walk(os.path.join(folders, EVAL_SPLIT)))
    exported_test = test_accuracy(fn_args.serving_model_dir, f"{folders}/{EVAL_SPLIT}")
    svm = classical_baseline(folders)
    validation = summary["validation_examples"]
    return {
        "dataset": dataset,
        "overrides": overrides,
        "roles": summary["roles"],
        "epochs": summary["scratch"]["epochs"],
        "exported": summary.get("exported", "transfer"),
        "test": with_interval(exported_test, test_images),
        "svm_test": with_interval(svm, test_images),
        "transfer_validation": with_interval(kept_accuracy(summary["phases"]), validation),
        "scratch_validation": with_interval(summary["scratch"]["validation_accuracy"], validation),
        "trainer_seconds": round(seconds),
        "scratch_seconds": round(summary["scratch"]["seconds"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    overrides = dict(parse_assignment(assignment) for assignment in args.set)
    print(machine())
    for dataset in args.dataset or sorted(DATASETS):
        print(json.dumps(measure(dataset, overrides)), flush=True)


if __name__ == "__main__":
    main()
