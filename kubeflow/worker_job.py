"""What the Trainer task that launches workers (kubeflow/multi_worker.py) and its two kinds of job
(kubeflow/tfjob.py, kubeflow/custom_job.py) share: the job's settings, and how a job fails.

A module of its own: multi_worker.py runs as `__main__`, whose classes are
not the ones the job modules would import from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class JobSettings(BaseModel):
    """What the compiled spec tells this task of the job (from the kubeflow section)."""

    backend: Literal["kfp", "vertex"]
    image: str
    workers: int
    start_deadline_seconds: float
    job_deadline_hours: float
    # Open-source KFP: the namespace (default: the task pod's) and each replica's pod limits.
    namespace: str = ""
    limits: dict[str, str] = {}
    # Vertex AI: where the job runs, as whom, and each replica's machine.
    project: str = ""
    region: str = ""
    api_endpoint: str = ""
    service_account: str = ""
    machine_type: str = ""
    accelerator_type: str = ""
    accelerator_count: int = 0
    # Vertex AI: the TensorBoard instance, and the job's base output folder (set by the
    # launching task: under its model run), under which Vertex AI puts the log folder.
    tensorboard: str = ""
    base_output_dir: str = ""

    @property
    def job_deadline_seconds(self) -> float:
        return self.job_deadline_hours * 3600


class JobFailed(RuntimeError):
    """The job failed or never started; the message names the replica and the service's reason."""
