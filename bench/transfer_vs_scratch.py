"""Transfer against training from scratch, on data unlike the backbone's source task.

scikit-learn's bundled digits (1,797 8x8 grayscale images, 10 classes; 1,437
train and 360 test, stratified) as PNG class folders, converted as a user's
would be; the Trainer's `run_fn` with the demo's shapes backbone, the fine-tuning
defaults (or `--set` overrides) and `training.compare_scratch`; then the same
network from random weights on all train images for as many epochs, scored on
the test split. Goal: transfer ends level with scratch (docs/trainer.md, "Fine-tuning
on data unlike the base's").

    .venv/bin/python -m bench.transfer_vs_scratch [--set training.phase2_epochs=15]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import yaml
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tfx import v1 as tfx

from bench.workload import machine
from imgclf.imagedata.folders import convert_folder
from imgclf.pipeline.predict import image_files, predict
from imgclf.settings.config import load_config, parse_assignment
from imgclf.settings.names import EVAL_SPLIT, TRAIN_SPLIT
from imgclf.trainer.export import read_summary
from imgclf.trainer.pretrain import scratch_baseline
from imgclf.trainer.schedule import kept_accuracy
from imgclf.trainer.task import run_fn

DEMO_CONFIG = "configs/demo.yaml"


def write_digit_folders(root: str) -> None:
    """<root>/{train,eval}/<digit>/<index>.png, white ink on black, as 8-bit grayscale."""
    digits = load_digits()
    indices = np.arange(len(digits.target))
    train, test = train_test_split(indices, test_size=0.2, random_state=0, stratify=digits.target)
    for split, chosen in ((TRAIN_SPLIT, train), (EVAL_SPLIT, test)):
        for index in chosen:
            folder = os.path.join(root, split, str(digits.target[index]))
            os.makedirs(folder, exist_ok=True)
            pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, "L").save(os.path.join(folder, f"{index:04d}.png"))


def demo_backbone() -> dict:
    """The demo's network settings: its bundled backbone, architecture and image size."""
    with open(DEMO_CONFIG) as f:
        return {f"model.{name}": value for name, value in yaml.safe_load(f)["model"].items()}


def test_accuracy(model_dir: str, test_folder: str) -> float:
    """Top-1 accuracy of the exported model on the test images; a folder names the class."""
    predictions = predict(model_dir, image_files([test_folder]), top_k=1)
    right = [p.classes[0] == os.path.basename(os.path.dirname(p.path)) for p in predictions.scored]
    return float(np.mean(right))


def train_on_folders(folders: str, work: str, overrides: dict) -> tuple:
    """Converts class folders as a user would, then runs the Trainer's `run_fn` on them with the
    demo's backbone and `training.compare_scratch`; returns its FnArgs, config and seconds."""
    records = f"{work}/records"
    convert_folder(folders, records)
    config = load_config(
        {
            "data.root": records,
            **demo_backbone(),
            "training.compare_scratch": True,
            "serving.warmup_images": 0,
            **overrides,
        }
    )
    fn_args = tfx.components.FnArgs(
        train_files=[f"{records}/{TRAIN_SPLIT}/*"],
        eval_files=[f"{records}/{TRAIN_SPLIT}/*"],  # as the pipeline: validation is carved
        serving_model_dir=f"{work}/model",
        model_run_dir=f"{work}/model_run",
        custom_config=config.trainer_config().model_dump(mode="json"),
    )
    started = time.perf_counter()
    run_fn(fn_args)
    return fn_args, config, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    overrides = dict(parse_assignment(assignment) for assignment in args.set)
    work = tempfile.mkdtemp(prefix="transfer_vs_scratch_")
    folders = f"{work}/folders"
    write_digit_folders(folders)
    fn_args, config, seconds = train_on_folders(folders, work, overrides)
    summary = read_summary(fn_args.serving_model_dir)
    epochs = summary["scratch"]["epochs"]
    only_phase1 = config.training.model_copy(update={"phase1_epochs": epochs, "phase2_epochs": 0})
    scratch = scratch_baseline(
        config.data, config.model.model_copy(update={"weights": "none"}), only_phase1
    )
    print(machine())
    print(
        json.dumps(
            {
                "overrides": overrides,
                "epochs": epochs,
                "transfer_validation": round(kept_accuracy(summary["phases"]), 3),
                "scratch_validation": round(summary["scratch"]["validation_accuracy"], 3),
                "exported_test": round(
                    test_accuracy(fn_args.serving_model_dir, f"{folders}/{EVAL_SPLIT}"), 3
                ),
                "scratch_test": round(scratch["eval_accuracy"], 3),
                "trainer_seconds": round(seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
