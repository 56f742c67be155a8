"""The Trainer's replicas as a Vertex AI CustomJob, through google-cloud-aiplatform's job client.

What Vertex AI does with what is sent here, from its documentation and API:

- Distributed training (cloud.google.com/vertex-ai/docs/training/distributed-training):
  worker pool 0 holds the primary replica (the chief), exactly one, which
  reports the job's status as a whole; pool 1 the other workers. Each
  replica gets CLUSTER_SPEC and TF_CONFIG (pool 0 as `chief`, pool 1 as
  `worker`).
- The CustomJob resource and its states (google/cloud/aiplatform/v1
  custom_job.proto, job_state.proto, as the installed client has them):
  QUEUED and PENDING before the replicas run, RUNNING, then SUCCEEDED,
  FAILED (with `error`), CANCELLED or EXPIRED; `scheduling.timeout` ends a
  job that runs too long.
- Vertex AI TensorBoard (cloud.google.com/vertex-ai/docs/experiments/
  tensorboard-training): a job created with `tensorboard` (an instance's
  resource name) and a `base_output_directory` gets AIP_TENSORBOARD_LOG_DIR,
  a folder under that directory (cloud.google.com/vertex-ai/docs/training/
  code-requirements, environment variables), whose logs the instance shows.
- Cancelling a pipeline run cancels the job that the task's `gcp_resources`
  output names: google-cloud-pipeline-components writes it as soon as the
  job exists (kubeflow/pipelines components/google-cloud/
  google_cloud_pipeline_components/container/v1/gcp_launcher/
  job_remote_runner.py, create_job), `https://<endpoint>/v1/<job name>`.
"""

from __future__ import annotations

import json
import time

from absl import logging
from google.api_core import exceptions as google_exceptions
from google.cloud import aiplatform_v1
from google.cloud.aiplatform_v1.types import JobState
from google.protobuf import duration_pb2

from imgclf.kubeflow.worker_job import JobFailed, JobSettings

POLL_SECONDS = 2.0
RUNNING, SUCCEEDED = JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_SUCCEEDED
ENDED = {JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED, JobState.JOB_STATE_EXPIRED}
CONSOLE = "https://console.cloud.google.com/vertex-ai"


def custom_job(settings: JobSettings, command: list[str], display_name: str) -> dict:
    """Pool 0: the chief, one replica; pool 1: the other workers; each the same machine."""
    machine: dict = {"machine_type": settings.machine_type}
    if settings.accelerator_count:
        machine["accelerator_type"] = settings.accelerator_type
        machine["accelerator_count"] = settings.accelerator_count

    def pool(replicas: int) -> dict:
        return {
            "machine_spec": machine,
            "replica_count": replicas,
            "container_spec": {"image_uri": settings.image, "command": command},
        }

    pools = [pool(1)]
    if settings.workers > 1:
        pools.append(pool(settings.workers - 1))
    spec: dict = {
        "worker_pool_specs": pools,
        "scheduling": {
            "timeout": duration_pb2.Duration(seconds=round(settings.job_deadline_seconds))
        },
    }
    if settings.service_account:
        spec["service_account"] = settings.service_account
    if settings.tensorboard:
        spec["tensorboard"] = settings.tensorboard
        spec["base_output_directory"] = {"output_uri_prefix": settings.base_output_dir}
    return {"display_name": display_name, "job_spec": spec}


class CustomJob:
    """One CustomJob: created, followed to its end with deadlines, cancelled if still running."""

    def __init__(self, settings: JobSettings):
        self.settings = settings
        endpoint = settings.api_endpoint or f"{settings.region}-aiplatform.googleapis.com"
        # An http(s):// endpoint speaks REST, as kubeflow/vertex.py's client does.
        self.client = aiplatform_v1.JobServiceClient(
            client_options={"api_endpoint": endpoint},
            transport="rest" if endpoint.startswith("http") else None,
        )
        self.endpoint_url = endpoint if "://" in endpoint else f"https://{endpoint}"
        self.name = ""
        self.state = JobState.JOB_STATE_UNSPECIFIED

    def __str__(self) -> str:
        return f"CustomJob {self.name}"

    def create(self, command: list[str]) -> str:
        """Creates the job; returns the `gcp_resources` that name it."""
        parent = f"projects/{self.settings.project}/locations/{self.settings.region}"
        job = self.client.create_custom_job(
            parent=parent, custom_job=custom_job(self.settings, command, "imgclf-trainer")
        )
        self.name = job.name
        logging.info("Created %s: 1 chief and %d worker(s).", self, self.settings.workers - 1)
        uri = f"{self.endpoint_url}/v1/{self.name}"
        return json.dumps({"resources": [{"resourceType": "CustomJob", "resourceUri": uri}]})

    def wait(self) -> None:
        """Returns once the job has succeeded; raises JobFailed if it fails or a deadline passes."""
        start_deadline = self.settings.start_deadline_seconds
        started = time.monotonic()
        running = False
        while True:
            job = self.client.get_custom_job(name=self.name)
            self.state = job.state
            if job.state == SUCCEEDED:
                return
            if job.state in ENDED:
                raise JobFailed(f"{self} ended {job.state.name}: {job.error.message}")
            running = running or job.state == RUNNING
            waited = time.monotonic() - started
            if not running and waited > start_deadline:
                raise JobFailed(
                    f"{self} was still {job.state.name} after {start_deadline:.0f} s "
                    "(kubeflow.trainer.start_deadline_seconds): Vertex AI had not started its "
                    "replicas (quota, machine availability in the region, or the image)."
                )
            if waited > start_deadline + self.settings.job_deadline_seconds:
                raise JobFailed(
                    f"{self} did not end within kubeflow.trainer.job_deadline_hours "
                    f"({self.settings.job_deadline_hours:g})."
                )
            time.sleep(POLL_SECONDS)

    def finished(self) -> str:
        job_id = self.name.rsplit("/", 1)[-1]
        return (
            f"{self}: the replicas' logs are in Cloud Logging, linked from "
            f"{CONSOLE}/locations/{self.settings.region}/training/{job_id}"
            f"?project={self.settings.project}"
        )

    def stop(self) -> None:
        """Cancels the job unless it has ended."""
        if not self.name or self.state == SUCCEEDED or self.state in ENDED:
            return
        try:
            self.client.cancel_custom_job(name=self.name)
        except google_exceptions.FailedPrecondition:
            return  # it ended meanwhile
        logging.info("Cancelled %s.", self)
