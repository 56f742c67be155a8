"""The Trainer task when kubeflow.trainer.workers > 1: it launches the workers and waits for them.

The compiled spec runs this module instead of the entrypoint in the Trainer's
container (kubeflow/runner.py), with the Trainer's own arguments and the job's
settings. It starts a job of `workers` replicas, each running the Trainer's
own executor command, `python -m imgclf.kubeflow.entrypoint` with the same
arguments: a TFJob of the Kubeflow Training Operator on open-source KFP
(kubeflow/tfjob.py), a Vertex AI CustomJob on Vertex AI Pipelines
(kubeflow/custom_job.py). The service gives each replica its TF_CONFIG, so
they train together under MultiWorkerMirroredStrategy and only the chief
exports (components/trainer.py).

The executor's output file (the Model's properties, which the Pusher reads)
is a local path of the task's pod, which the replicas cannot write: the chief
writes it beside its model run instead (`<model_run>/replicas/`), and this
task copies it to its own output file when the job has succeeded. The task
fails, naming the replica, when the job fails or does not start in time, and
the job is stopped however the task ends: success, failure, SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from tfx.types.standard_component_specs import MODEL_RUN_KEY

from imgclf.kubeflow.entrypoint import ENTRYPOINT, INVOCATION_ARG
from imgclf.kubeflow.worker_job import JobFailed, JobSettings

# The Trainer container's command when it launches workers instead of training.
COMMAND = ["python", "-m", "imgclf.kubeflow.multi_worker"]
# The option that carries the job's settings; the other arguments are the Trainer's own.
JOB_ARG = "--multi_worker_job"
REPLICAS_FOLDER = "replicas"  # under the model run: what the chief leaves for this task
VERTEX_OUTPUT_FOLDER = "vertex"  # under the model run: the CustomJob's base output folder
# The Trainer's output parameter on Vertex AI that names the running job, so that
# cancelling the pipeline run cancels the job (google-cloud-pipeline-components' contract).
GCP_RESOURCES = "gcp_resources"


class Stopped(BaseException):
    """SIGTERM or SIGINT reached the task (KFP cancelled the run, or the pod is being evicted).

    A BaseException, as KeyboardInterrupt is: no client library's `except Exception` keeps it.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def replica_arguments(arguments: list[str]) -> tuple[list[str], dict]:
    """The replicas' arguments, and the task's own outputs of the executor input."""
    invocation_at = arguments.index(INVOCATION_ARG) + 1
    executor_input = json.loads(arguments[invocation_at])
    task_outputs = json.loads(json.dumps(executor_input["outputs"]))
    outputs = executor_input["outputs"]
    outputs["outputFile"] = chief_output_file(task_outputs)
    # The task's own output parameters are written by this task, not by TFX's executor.
    outputs.get("parameters", {}).pop(GCP_RESOURCES, None)
    replica = list(arguments)
    replica[invocation_at] = json.dumps(executor_input)
    return replica, task_outputs


def chief_output_file(task_outputs: dict) -> str:
    return f"{_model_run(task_outputs)}/{REPLICAS_FOLDER}/executor_output.json"


def _model_run(task_outputs: dict) -> str:
    return task_outputs["artifacts"][MODEL_RUN_KEY]["artifacts"][0]["uri"].rstrip("/")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(JOB_ARG, required=True)
    args, trainer_arguments = parser.parse_known_args(argv)
    settings = JobSettings.model_validate_json(args.multi_worker_job)
    arguments, task_outputs = replica_arguments(trainer_arguments)
    if settings.tensorboard:
        # This run's own folder: Vertex AI puts the TensorBoard logs' folder under it.
        base = f"{_model_run(task_outputs)}/{VERTEX_OUTPUT_FOLDER}"
        settings = settings.model_copy(update={"base_output_dir": base})
    import tensorflow as tf
    from absl import logging

    logging.set_verbosity(logging.INFO)  # as TFX's executor runner does: the task's log
    if settings.backend == "vertex":
        from imgclf.kubeflow.custom_job import CustomJob as Job
    else:
        from imgclf.kubeflow.tfjob import TFJob as Job

    def stop(signum, frame):
        raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    job = Job(settings)
    try:
        resources = job.create(ENTRYPOINT + arguments)
        if GCP_RESOURCES in task_outputs.get("parameters", {}):
            with open(task_outputs["parameters"][GCP_RESOURCES]["outputFile"], "w") as f:
                f.write(resources)
        job.wait()
        print(job.finished(), flush=True)
        tf.io.gfile.makedirs(os.path.dirname(task_outputs["outputFile"]))
        tf.io.gfile.copy(chief_output_file(task_outputs), task_outputs["outputFile"], True)
        print(f"{job} succeeded: {settings.workers} workers trained.", flush=True)
        return 0
    except JobFailed as error:
        print(f"The Trainer's job failed: {error}", file=sys.stderr, flush=True)
        return 1
    except Stopped as stopped:
        print(f"Stopped by {stopped}: stopping {job}.", file=sys.stderr, flush=True)
        return 128 + stopped.signum
    finally:
        # Stopping the job is the last thing this task does: no signal interrupts it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        job.stop()


if __name__ == "__main__":
    import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

    code = main(sys.argv[1:])
    # As the entrypoint does (its guard 2): no interpreter teardown to abort in.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
