"""Runs the pipeline on this machine with Beam: the file the TFX CLI loads.

    tfx pipeline create --engine beam --pipeline_path local_runner.py
    tfx run create --engine beam --pipeline_name image-classifier

Settings come from the environment (see settings/config.py). The TFX CLI
patches BeamDagRunner.run() to register the pipeline: pipeline/local_run.py runs
it with BeamDagRunner. `imgclf run` checks the data, the curated schema and the
base weights before it starts the TFX CLI; run directly, a weights file that
does not fit the base network is found by the Trainer.
"""

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import sys

from absl import logging

from imgclf.modelstore.history import ServingHistoryLost
from imgclf.pipeline.local_run import RunStopped, running_here
from imgclf.settings.config import load_config


def run() -> int:
    """The exit status: 0, or the shell's for the signal that stopped the run (143, 130)."""
    config = load_config()
    # One run at a time, after what a killed or forgotten run left is put right.
    try:
        with running_here(config) as run:
            run.start()
    except RunStopped as stop:
        logging.error("%s: %s", config.pipeline_name, stop.args[0])
        return stop.exit_status
    except ServingHistoryLost as lost:
        logging.error("%s: %s", config.pipeline_name, lost)
        return 1
    return 0


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    sys.exit(run())
