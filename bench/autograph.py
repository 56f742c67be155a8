"""One Trainer run (run_fn in a process of its own, as a Trainer pod runs it), with and
without AutoGraph rewriting Keras' own code (trainer/legacy_keras.py).

The end-to-end tests' schedule on the demo's network: the sample shapes (8 train
and 16 eval images a class, 64 px), the bundled backbone, 15 cached phase-1
epochs and 3 fine-tuning epochs, no augmentation. Both runs must print the same
epochs, figure for figure; the difference is the time before the first step of
each phase and the export.

    .venv/bin/python -m bench.autograph
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from bench.workload import NO_AUGMENTATION, machine

RUN_DEADLINE_SECONDS = 900
BACKBONE = "bundled:mobilenet_v2_0.35_64_shapes.h5"
EPOCH_MARK = "[trainer] "

# The child: run_fn as tests/trainer/run_trainer.py runs it; with "converted", the
# rule that leaves tf_keras alone is taken out again before anything is traced.
CHILD = """
import json, sys
import imgclf
from imgclf.trainer import legacy_keras
from tensorflow.python.autograph.core import config
if sys.argv[2] == "converted":
    config.CONVERSION_RULES = tuple(
        rule for rule in config.CONVERSION_RULES if rule is not legacy_keras.KERAS_RULE
    )
from tfx import v1 as tfx
from imgclf.trainer.task import run_fn
with open(sys.argv[1]) as f:
    run_fn(tfx.components.FnArgs(**json.load(f)))
"""


def fn_args(root: str, out: str) -> dict:
    from imgclf.settings.config import load_config

    settings = {
        "data.root": f"{root}/data",
        "model.base_model": "MobileNetV2",
        "model.alpha": 0.35,
        "model.image_size": 64,
        "model.weights": BACKBONE,
        "training.batch_size": 16,
        "training.phase1_epochs": 15,
        "training.phase2_epochs": 3,
        "training.early_stopping_patience": 0,
        **{f"training.{key}": value for key, value in NO_AUGMENTATION.items()},
    }
    config = load_config(settings)
    return {
        "train_files": [f"{root}/data/train/*"],
        "eval_files": [f"{root}/data/eval/*"],
        "serving_model_dir": f"{out}/serving",
        "model_run_dir": f"{out}/model_run",
        "custom_config": config.trainer_config().model_dump(mode="json"),
    }


def timed_run(root: str, mode: str) -> tuple[float, list[str]]:
    """Seconds of the whole child process, and the epoch lines it printed."""
    args_file = f"{root}/{mode}.json"
    with open(args_file, "w") as f:
        json.dump(fn_args(root, f"{root}/{mode}"), f)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, args_file, mode],
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_SECONDS,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"The {mode} run failed:\n{done.stderr[-3000:]}")
    output = done.stdout + done.stderr
    return seconds, [line for line in output.splitlines() if line.startswith(EPOCH_MARK)]


def main() -> None:
    from imgclf.imagedata.sample import write_sample_dataset

    print(machine())
    with tempfile.TemporaryDirectory() as root:
        write_sample_dataset(f"{root}/data", train_per_class=8, eval_per_class=16, image_size=64)
        as_written, epochs = timed_run(root, "as_written")
        converted, converted_epochs = timed_run(root, "converted")
    # Images/s differ from run to run; the figures after them must not.
    same = [e.split("):")[-1] for e in epochs] == [e.split("):")[-1] for e in converted_epochs]
    print(f"Keras traced as written:      {as_written:6.1f} s")
    print(f"Keras rewritten by AutoGraph: {converted:6.1f} s")
    print(f"Saved: {converted - as_written:.1f} s ({converted / as_written:.2f}x)")
    print(f"The same {len(epochs)} epochs, figure for figure: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
