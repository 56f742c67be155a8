"""Runs the pipeline on this machine with Beam: the file the TFX CLI loads.

    tfx pipeline create --engine beam --pipeline_path local_runner.py
    tfx run create --engine beam --pipeline_name image-classifier

Settings come from the environment (see settings/config.py). The TFX CLI
patches BeamDagRunner.run() to register the pipeline, so this must use it.
"""

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import sys

from absl import logging
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from imgclf.modelstore.history import ServingHistoryLost
from imgclf.pipeline.local_run import RunStopped, starting_run
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.config import load_config
from imgclf.trainer.distribution import use_cpu_replicas


def run() -> int:
    """The exit status: 0, or the shell's for the signal that stopped the run (143, 130)."""
    config = load_config()
    # Must happen before any component runs a TensorFlow op in this process.
    use_cpu_replicas(config.training.cpu_replicas)
    # One run at a time, after what a killed or forgotten run left is put right.
    try:
        with starting_run(config):
            BeamDagRunner().run(create_pipeline(config))
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
