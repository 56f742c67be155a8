"""The Trainer task when kubeflow.trainer.workers > 1: it launches the workers and waits for them.

The compiled spec runs this module instead of the entrypoint in the Trainer's
container (kubeflow/runner.py), with the Trainer's own arguments and the job's
settings. It starts a TFJob (kubeflow/tfjob.py) whose replicas each run the
Trainer's own executor command, `python -m imgclf.kubeflow.entrypoint` with
the same arguments; the operator gives each its TF_CONFIG, so they train
together under MultiWorkerMirroredStrategy and only the chief exports
(components/trainer.py).

The executor's output file (the Model's properties, which the Pusher reads)
is a local path of the task's pod, which the replicas cannot write: the chief
writes it beside its model run instead (`<model_run>/replicas/`), and this
task copies it to its own output file when the job has succeeded. The task
fails, naming the replica and quoting its log, when the job fails, and the
job is deleted however the task ends: success, failure, SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from pydantic import BaseModel
from tfx.types.standard_component_specs import MODEL_RUN_KEY

from imgclf.kubeflow.entrypoint import ENTRYPOINT, INVOCATION_ARG

# The Trainer container's command when it launches workers instead of training.
COMMAND = ["python", "-m", "imgclf.kubeflow.multi_worker"]
# The option that carries the job's settings; the other arguments are the Trainer's own.
JOB_ARG = "--multi_worker_job"
REPLICAS_FOLDER = "replicas"  # under the model run: what the chief leaves for this task


class JobSettings(BaseModel):
    """What the compiled spec tells this task of the job (from kubeflow.trainer)."""

    image: str
    workers: int
    limits: dict[str, str]
    namespace: str = ""
    start_deadline_seconds: float
    job_deadline_hours: float


class Stopped(BaseException):
    """SIGTERM or SIGINT reached the task (KFP cancelled the run, or the pod is being evicted).

    A BaseException, as KeyboardInterrupt is: no client library's `except Exception` keeps it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def replica_arguments(arguments: list[str]) -> tuple[list[str], str, str]:
    """The replicas' arguments, the task's output file, and where the chief writes it instead."""
    invocation_at = arguments.index(INVOCATION_ARG) + 1
    executor_input = json.loads(arguments[invocation_at])
    outputs = executor_input["outputs"]
    task_output_file = outputs["outputFile"]
    model_run = outputs["artifacts"][MODEL_RUN_KEY]["artifacts"][0]["uri"]
    chief_output_file = f"{model_run.rstrip('/')}/{REPLICAS_FOLDER}/executor_output.json"
    outputs["outputFile"] = chief_output_file
    replica = list(arguments)
    replica[invocation_at] = json.dumps(executor_input)
    return replica, task_output_file, chief_output_file


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(JOB_ARG, required=True)
    args, trainer_arguments = parser.parse_known_args(argv)
    settings = JobSettings.model_validate_json(args.multi_worker_job)
    arguments, task_output_file, chief_output_file = replica_arguments(trainer_arguments)
    import tensorflow as tf
    from absl import logging

    from imgclf.kubeflow.tfjob import JobFailed, Replicas, TFJob

    logging.set_verbosity(logging.INFO)  # as TFX's executor runner does: the task's log

    def stop(signum, frame):
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    job = TFJob(settings.namespace)
    try:
        job.create(
            Replicas(
                image=settings.image,
                command=ENTRYPOINT + arguments,
                workers=settings.workers,
                limits=settings.limits,
                active_deadline_seconds=round(settings.job_deadline_hours * 3600),
            )
        )
        job.wait(settings.start_deadline_seconds, settings.job_deadline_hours * 3600)
        print(f"--- TFJob {job.name}: the chief's log ---\n{job.chief_log()}", flush=True)
        tf.io.gfile.makedirs(os.path.dirname(task_output_file))
        tf.io.gfile.copy(chief_output_file, task_output_file, overwrite=True)
        print(f"TFJob {job.name} succeeded: {settings.workers} workers trained.", flush=True)
        return 0
    except JobFailed as error:
        print(f"The Trainer's job failed: {error}", file=sys.stderr, flush=True)
        return 1
    except Stopped as stopped:
        print(f"Stopped by {stopped}: deleting TFJob {job.name}.", file=sys.stderr, flush=True)
        return 128 + stopped.signum
    finally:
        # Deleting the job is the last thing this task does: no signal interrupts it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        job.delete()


if __name__ == "__main__":
    import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

    code = main(sys.argv[1:])
    # As the entrypoint does (its guard 2): no interpreter teardown to abort in.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
