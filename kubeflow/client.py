"""Submits and schedules the compiled pipeline on Kubeflow Pipelines 2.x, through the kfp client.

Failures come back as KubeflowError, whose message says what was being done,
what the server answered and what to check, instead of a stack trace.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kfp
import kfp_server_api
import urllib3

PAGE_SIZE = 100


class KubeflowError(RuntimeError):
    """A KFP call failed; the message is meant for the user as it is."""


@dataclass(frozen=True)
class Submitted:
    kind: str  # "run" or "recurring run"
    id: str
    link: str


class KubeflowClient:
    """The project's pipeline on one KFP deployment: upload, run, schedule, list, disable."""

    def __init__(self, host: str, namespace: str = "", token: str | None = None):
        if not host:
            raise KubeflowError(
                "No KFP host: give --host or set kubeflow.host (e.g. https://kfp.example.com, "
                "or http://localhost:8080 after `kubectl port-forward -n kubeflow "
                "svc/ml-pipeline-ui 8080:80`)."
            )
        self.host = host.rstrip("/")
        self.namespace = namespace or None
        with self._explained("connecting"):
            self._client = kfp.Client(
                host=self.host, namespace=namespace or "kubeflow", existing_token=token
            )

    def upload(self, package_path: str, pipeline_name: str) -> tuple[str, str]:
        """(pipeline id, version id): a new pipeline, or a new version of the existing one."""
        with self._explained(f"looking up pipeline {pipeline_name!r}"):
            pipeline_id = self._client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            with self._explained(f"uploading pipeline {pipeline_name!r}"):
                pipeline_id = self._client.upload_pipeline(
                    package_path, pipeline_name=pipeline_name, namespace=self.namespace
                ).pipeline_id
            with self._explained(f"reading pipeline {pipeline_name!r}'s version"):
                versions = self._client.list_pipeline_versions(pipeline_id, page_size=1)
            return pipeline_id, versions.pipeline_versions[0].pipeline_version_id
        version_name = _version_name(package_path, pipeline_name)
        with self._explained(f"uploading version {version_name!r} of {pipeline_name!r}"):
            version = self._client.upload_pipeline_version(
                package_path, pipeline_version_name=version_name, pipeline_id=pipeline_id
            )
        return pipeline_id, version.pipeline_version_id

    def experiment_id(self, name: str) -> str:
        with self._explained(f"finding or creating experiment {name!r}"):
            return self._client.create_experiment(name, namespace=self.namespace).experiment_id

    def run(
        self,
        experiment: str,
        pipeline: tuple[str, str],
        run_name: str,
        pipeline_root: str,
        parameters: Mapping[str, Any],
    ) -> Submitted:
        experiment_id = self.experiment_id(experiment)
        with self._explained(f"creating run {run_name!r}"):
            run = self._client.run_pipeline(
                experiment_id=experiment_id,
                job_name=run_name,
                pipeline_id=pipeline[0],
                version_id=pipeline[1],
                params=dict(parameters),
                pipeline_root=pipeline_root,
            )
        return Submitted("run", run.run_id, f"{self.host}/#/runs/details/{run.run_id}")

    def schedule(
        self,
        experiment: str,
        pipeline: tuple[str, str],
        name: str,
        cron: str,
        pipeline_root: str,
        parameters: Mapping[str, Any],
        max_concurrency: int = 1,
        catchup: bool = False,
    ) -> Submitted:
        """A recurring run on `cron`; by default one at a time, missed runs not made up.

        The API server checks `cron` with robfig/cron, seconds first ('0 0 3 * * *',
        '@daily', '@every 6h': backend/src/apiserver/server/api_converter.go); its
        refusal comes back explained.
        """
        experiment_id = self.experiment_id(experiment)
        with self._explained(f"creating recurring run {name!r}"):
            job = self._client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=name,
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=not catchup,
                pipeline_id=pipeline[0],
                version_id=pipeline[1],
                params=dict(parameters),
                pipeline_root=pipeline_root,
            )
        link = f"{self.host}/#/recurringrun/details/{job.recurring_run_id}"
        return Submitted("recurring run", job.recurring_run_id, link)

    def recurring_runs(self, pipeline_name: str) -> list[kfp_server_api.V2beta1RecurringRun]:
        """The recurring runs of this pipeline (any version), enabled or not."""
        with self._explained(f"looking up pipeline {pipeline_name!r}"):
            pipeline_id = self._client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            return []
        found, token = [], ""
        while True:
            with self._explained("listing recurring runs"):
                page = self._client.list_recurring_runs(
                    page_token=token, page_size=PAGE_SIZE, namespace=self.namespace
                )
            for job in page.recurring_runs or []:
                reference = job.pipeline_version_reference
                if reference is not None and reference.pipeline_id == pipeline_id:
                    found.append(job)
            token = page.next_page_token
            if not token:
                return found

    def disable(self, recurring_run_id: str) -> None:
        with self._explained(f"disabling recurring run {recurring_run_id!r}"):
            self._client.disable_recurring_run(recurring_run_id)

    @contextlib.contextmanager
    def _explained(self, action: str) -> Iterator[None]:
        host = self.host
        try:
            yield
        except kfp_server_api.ApiException as error:
            raise KubeflowError(_explain_status(host, action, error)) from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
            raise KubeflowError(
                f"Cannot reach Kubeflow Pipelines at {host} while {action}: {_reason(error)}. "
                "Check the host and that its API answers (e.g. `kubectl port-forward -n "
                "kubeflow svc/ml-pipeline-ui 8080:80`, then --host http://localhost:8080)."
            ) from None


def _explain_status(host: str, action: str, error: kfp_server_api.ApiException) -> str:
    said = _server_message(error)
    status = f"{error.status} {error.reason}".strip()
    head = f"Kubeflow Pipelines at {host} answered {status} while {action}"
    if error.status == 401:
        return f"{head}: not authenticated. Give a valid token (--token or $KFP_TOKEN). {said}"
    if error.status == 403:
        return (
            f"{head}: not allowed. Check the namespace (--namespace) and that your account "
            f"may use it. {said}"
        )
    if error.status == 404:
        return (
            f"{head}: not found. Check the id or name, and that the host is the KFP API "
            f"(some installs serve it under /pipeline). {said}"
        )
    if error.status == 409:
        return f"{head}: it conflicts with something that exists. {said}"
    if error.status >= 500:
        return f"{head}: the server failed. Retry later, or read the ml-pipeline pod's logs. {said}"
    return f"{head}. {said}"


def _server_message(error: kfp_server_api.ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {"message": error.body}
    message = body.get("message") or body.get("error") or ""
    return f"The server said: {message}" if message else ""


def _reason(error: Exception) -> str:
    return str(getattr(error, "reason", None) or error)


def _version_name(package_path: str, pipeline_name: str) -> str:
    with open(package_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:8]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{pipeline_name}-{stamp}-{digest}"
