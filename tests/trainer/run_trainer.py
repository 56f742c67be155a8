"""Runs trainer.task.run_fn in a process of its own, as a Trainer pod does.

    python run_trainer.py FN_ARGS_JSON

FN_ARGS_JSON holds FnArgs fields (train_files, eval_files, serving_model_dir,
model_run_dir, custom_config). Used by tests that kill or distribute training.
"""

import json
import sys

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
from tfx import v1 as tfx

from imgclf.trainer.task import run_fn

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        run_fn(tfx.components.FnArgs(**json.load(f)))
