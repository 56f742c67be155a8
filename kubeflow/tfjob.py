"""The Trainer's replicas as a TFJob of the Kubeflow Training Operator (kubeflow.org/v1).

What the operator does with what is sent here, from its source
(kubeflow/training-operator v1.7.0, the last release whose SDK installs beside
kfp 2.7's kubernetes<27):

- pkg/apis/kubeflow.org/v1/tensorflow_types.go: replica types `Chief` and
  `Worker`; the container named `tensorflow` is the one it configures; port
  2222 (`tfjob-port`) unless the container names another.
- pkg/controller.v1/tensorflow/tfjob_controller.go (SetClusterSpec) and
  tensorflow.go (genTFConfigJSONStr, genClusterSpec): TF_CONFIG in that
  container, only when the job has more than one replica: every replica type
  in `cluster`, lower-cased, as `<job>-<type>-<index>.<namespace>.svc:2222`,
  and the replica's own `task`.
- tfjob_controller.go (UpdateJobStatus): with a Chief, the job is Running
  while the chief runs and Succeeded when it succeeds; a failed replica that
  is not restarted fails the job ("TFJob ns/name has failed because 1 Worker
  replica(s) failed.").
- pkg/apis/kubeflow.org/v1/common_types.go: the conditions Created, Running,
  Restarting, Succeeded, Failed; pod labels `training.kubeflow.org/job-name`,
  `replica-type` (lower case) and `replica-index`; RunPolicy's
  cleanPodPolicy and activeDeadlineSeconds.

Spoken to with the `kubernetes` client, as the task pod's service account
(in the cluster) or a kubeconfig (elsewhere). The RBAC it needs is
kubeflow/trainer-rbac.yaml.
"""

from __future__ import annotations

import os
import time
import uuid

from absl import logging
from kubernetes import client
from kubernetes.client.rest import ApiException

from imgclf.kubeflow.worker_job import JobFailed, JobSettings
from imgclf.modelstore.kubernetes_api import connect, own_namespace

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "tfjobs"
CONTAINER = "tensorflow"  # the operator writes TF_CONFIG into the container of this name
CHIEF, WORKER = "Chief", "Worker"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
POLL_SECONDS = 2.0
LOG_LINES = 40  # of a failed replica's log, in the task's error


def tfjob_manifest(
    name: str, namespace: str, settings: JobSettings, command: list[str], pod: client.V1Pod | None
) -> dict:
    """A Chief and workers-1 Workers; a replica that fails is not restarted, so the job fails.

    `pod`: the task's own pod, when known: the job is its dependent (deleted
    with it) and its replicas run as its service account.
    """

    def replica_spec(count: int) -> dict:
        container = {"name": CONTAINER, "image": settings.image, "command": command}
        if settings.limits:
            container["resources"] = {"limits": settings.limits}
        spec: dict = {"containers": [container]}
        if pod is not None and pod.spec.service_account_name:
            spec["serviceAccountName"] = pod.spec.service_account_name
        return {"replicas": count, "restartPolicy": "Never", "template": {"spec": spec}}

    metadata: dict = {"name": name, "namespace": namespace}
    if pod is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid}
        ]
    specs = {CHIEF: replica_spec(1)}
    if settings.workers > 1:
        specs[WORKER] = replica_spec(settings.workers - 1)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TFJob",
        "metadata": metadata,
        "spec": {
            "runPolicy": {
                "cleanPodPolicy": "Running",
                "activeDeadlineSeconds": round(settings.job_deadline_seconds),
            },
            "tfReplicaSpecs": specs,
        },
    }


class TFJob:
    """One TFJob: created, followed to its end with deadlines, its logs read, deleted."""

    def __init__(self, settings: JobSettings):
        connect()
        self.settings = settings
        self.custom = client.CustomObjectsApi()
        self.core = client.CoreV1Api()
        self.namespace = settings.namespace or own_namespace()
        self.name = ""

    def __str__(self) -> str:
        return f"TFJob {self.namespace}/{self.name}"

    def create(self, command: list[str]) -> str:
        """Creates the job; returns what names it."""
        self.name = f"imgclf-trainer-{uuid.uuid4().hex[:10]}"
        manifest = tfjob_manifest(
            self.name, self.namespace, self.settings, command, self._own_pod()
        )
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )
        logging.info("Created %s: 1 Chief and %d Worker(s).", self, self.settings.workers - 1)
        return str(self)

    def wait(self) -> None:
        """Returns once the job has succeeded; raises JobFailed if it fails or a deadline passes."""
        start_deadline = self.settings.start_deadline_seconds
        started = time.monotonic()
        running = False
        while True:
            conditions = self._conditions()
            if conditions.get("Succeeded"):
                return
            if conditions.get("Failed"):
                raise JobFailed(self._why_failed(conditions["Failed"]))
            running = running or self._all_pods_running()
            waited = time.monotonic() - started
            if not running and waited > start_deadline:
                raise JobFailed(
                    f"{self}: its replicas were not all running after {start_deadline:.0f} s "
                    f"(kubeflow.trainer.start_deadline_seconds). {self._why_pending()}"
                )
            if waited > self.settings.job_deadline_seconds:
                raise JobFailed(
                    f"{self} did not end within kubeflow.trainer.job_deadline_hours "
                    f"({self.settings.job_deadline_hours:g})."
                )
            time.sleep(POLL_SECONDS)

    def finished(self) -> str:
        """The chief's log, for the task's log."""
        return f"--- {self}: the chief's log ---\n{self._log(f'{self.name}-chief-0')}"

    def stop(self) -> None:
        """Deletes the job, and with it its pods."""
        if not self.name:
            return
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
            logging.info("Deleted %s.", self)
        except ApiException as error:
            if error.status != 404:
                raise

    def _conditions(self) -> dict[str, str]:
        """The job's true conditions, each with its message."""
        job = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        return {
            condition["type"]: condition.get("message", "")
            for condition in job.get("status", {}).get("conditions", [])
            if condition.get("status") == "True"
        }

    def _pods(self) -> list[client.V1Pod]:
        selector = f"{JOB_NAME_LABEL}={self.name}"
        return self.core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def _all_pods_running(self) -> bool:
        pods = self._pods()
        return bool(pods) and all(pod.status.phase in ("Running", "Succeeded") for pod in pods)

    def _why_pending(self) -> str:
        reasons = []
        for pod in self._pods():
            for status in pod.status.container_statuses or []:
                waiting = status.state and status.state.waiting
                if waiting:
                    reasons.append(f"{pod.metadata.name}: {waiting.reason}: {waiting.message}")
            for condition in pod.status.conditions or []:
                if condition.status == "False" and condition.reason:
                    reasons.append(f"{pod.metadata.name}: {condition.reason}: {condition.message}")
        return "The cluster says: " + "; ".join(reasons) if reasons else "No pod was created."

    def _why_failed(self, message: str) -> str:
        lines = [message]
        for pod in self._pods():
            if pod.status.phase != "Failed":
                continue
            terminated = next(
                (s.state.terminated for s in pod.status.container_statuses or [] if s.state),
                None,
            )
            code = f" with exit code {terminated.exit_code}" if terminated else ""
            tail = "\n    ".join(self._log(pod.metadata.name).splitlines()[-LOG_LINES:])
            lines.append(f"Replica {pod.metadata.name} failed{code}. Its log ends:\n    {tail}")
        return "\n".join(lines)

    def _log(self, pod_name: str) -> str:
        try:
            return self.core.read_namespaced_pod_log(pod_name, self.namespace, container=CONTAINER)
        except ApiException as error:
            return f"(no log: {error.status} {error.reason})"

    def _own_pod(self) -> client.V1Pod | None:
        """The task's pod, found by its host name; none outside a pod."""
        name = os.environ.get("HOSTNAME", "")
        try:
            return self.core.read_namespaced_pod(name, self.namespace) if name else None
        except ApiException as error:
            if error.status not in (403, 404):
                raise
        logging.info(
            "Not running in a pod of namespace %s: the job's replicas use the namespace's "
            "default service account and outlive this task if it is killed.",
            self.namespace,
        )
        return None
