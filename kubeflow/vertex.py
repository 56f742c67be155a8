"""Submits and schedules the compiled pipeline on Vertex AI Pipelines, through Vertex's own client.

google-cloud-aiplatform's PipelineJob takes the compiled YAML as it is (the
same file open-source KFP is given), the pipeline root and the parameters;
its schedules are Vertex's recurring runs. Failures come back as
KubeflowError, whose message says what was being done, what the service
answered and what to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import aiplatform

from imgclf.kubeflow.client import KubeflowError, Submitted

CONSOLE = "https://console.cloud.google.com/vertex-ai"


class VertexClient:
    """The project's pipeline on Vertex AI Pipelines in one project and region."""

    def __init__(
        self,
        project: str,
        region: str,
        service_account: str = "",
        api_endpoint: str = "",
    ):
        """`api_endpoint`: Google's regional one unless given; http(s):// URLs speak REST."""
        missing = [name for name, value in (("project", project), ("region", region)) if not value]
        if missing:
            settings = " and ".join(f"kubeflow.{name}" for name in missing)
            raise KubeflowError(f"To run on Vertex AI Pipelines, set {settings}.")
        self.project, self.region = project, region
        self.service_account = service_account or None
        with self._explained("connecting"):
            try:
                aiplatform.init(
                    project=project,
                    location=region,
                    api_endpoint=api_endpoint or None,
                    api_transport="rest" if api_endpoint.startswith("http") else None,
                )
            except ValueError as error:  # the library's own check of the region
                raise KubeflowError(f"kubeflow.region: {error}") from None

    def _job(
        self, name: str, template_path: str, pipeline_root: str, parameters: Mapping[str, Any]
    ) -> aiplatform.PipelineJob:
        return aiplatform.PipelineJob(
            display_name=name,
            template_path=template_path,
            pipeline_root=pipeline_root,
            parameter_values=dict(parameters),
            project=self.project,
            location=self.region,
        )

    def run(
        self, name: str, template_path: str, pipeline_root: str, parameters: Mapping[str, Any]
    ) -> Submitted:
        with self._explained(f"creating pipeline job {name!r}"):
            job = self._job(name, template_path, pipeline_root, parameters)
            job.submit(service_account=self.service_account)
        link = f"{CONSOLE}/locations/{self.region}/pipelines/runs/{job.name}?project={self.project}"
        return Submitted("run", job.resource_name, link)

    def schedule(
        self,
        name: str,
        template_path: str,
        cron: str,
        pipeline_root: str,
        parameters: Mapping[str, Any],
        max_concurrency: int = 1,
    ) -> Submitted:
        """A schedule on `cron` (Vertex's: 5 fields, minutes first; 'TZ=...' may lead)."""
        with self._explained(f"creating schedule {name!r}"):
            job = self._job(name, template_path, pipeline_root, parameters)
            schedule = job.create_schedule(
                cron=cron,
                display_name=name,
                max_concurrent_run_count=max_concurrency,
                service_account=self.service_account,
            )
        link = f"{CONSOLE}/locations/{self.region}/pipelines/schedules?project={self.project}"
        return Submitted("schedule", schedule.resource_name, link)

    def schedules(self, name: str) -> list[aiplatform.PipelineJobSchedule]:
        """This pipeline's schedules (named as `schedule` names them), active or paused."""
        with self._explained("listing schedules"):
            return aiplatform.PipelineJobSchedule.list(
                filter=f'display_name="{name}"', project=self.project, location=self.region
            )

    def disable(self, schedule_id: str) -> None:
        """Pauses a schedule (Vertex's word for disabling it)."""
        with self._explained(f"pausing schedule {schedule_id!r}"):
            aiplatform.PipelineJobSchedule.get(
                schedule_id, project=self.project, location=self.region
            ).pause()

    @contextlib.contextmanager
    def _explained(self, action: str) -> Iterator[None]:
        where = f"Vertex AI Pipelines in project {self.project}, region {self.region}"
        try:
            yield
        except google_exceptions.GoogleAPICallError as error:
            raise KubeflowError(_explain(where, action, error)) from None
        except auth_exceptions.DefaultCredentialsError:
            raise KubeflowError(
                f"No Google Cloud credentials while {action} on {where}: run "
                "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS."
            ) from None


def _explain(where: str, action: str, error: google_exceptions.GoogleAPICallError) -> str:
    head = f"{where} answered {error.code} while {action}"
    said = f"The service said: {error.message}" if error.message else ""
    if error.code == 401:
        return f"{head}: not authenticated. Check your Google Cloud credentials. {said}"
    if error.code == 403:
        return (
            f"{head}: not allowed. Check that the Vertex AI API is enabled and that your "
            f"account (or kubeflow.service_account) may use it. {said}"
        )
    if error.code == 404:
        return f"{head}: not found. Check the project, region and id. {said}"
    if error.code == 400:
        return f"{head}: the request was refused. {said}"
    return f"{head}. {said}"
