"""A local stand-in for the Kubernetes API server with the Kubeflow Training Operator, on 127.0.0.1.

The project's client (kubeflow/tfjob.py) speaks to it with the `kubernetes`
package through a kubeconfig, as it would speak to a cluster. It serves the
calls that client makes and runs TFJobs as the operator does, each replica a
local process, following kubeflow/training-operator v1.7.0:

- pkg/apis/kubeflow.org/v1/tensorflow_validation.go: a job needs replica
  specs with containers, an image in each, a container named `tensorflow`,
  at most one Chief (refused here at creation with 422, as an admission
  webhook answers).
- pkg/controller.v1/tensorflow/tfjob_controller.go (SetClusterSpec) and
  tensorflow.go (genTFConfigJSONStr, genClusterSpec): TF_CONFIG only in the
  `tensorflow` container and only when the job has more than one replica;
  `cluster` lists every replica type, lower-cased; `task` is the replica's
  type and index; `environment` is "cloud". The operator's addresses,
  `<job>-<type>-<index>.<namespace>.svc:2222`, become free local ports here.
- tfjob_controller.go (UpdateJobStatus): Created, then Running while the
  chief runs, Succeeded when the chief exits 0; a replica that exits non-zero
  under restartPolicy Never fails the job ("TFJob ns/name has failed because
  1 Worker replica(s) failed."); cleanPodPolicy Running stops the others.
- pkg/apis/kubeflow.org/v1/common_types.go: pods named
  `<job>-<type>-<index>` (pkg/core/utils.go GenGeneralName), labelled with
  job-name, replica-type and replica-index; their phase, container state and
  exit code; their logs.
- Deleting a TFJob deletes its pods (the operator's owner references).

A test can keep pods Pending with a reason (an image that cannot be pulled),
or kill a replica when a line appears in its log.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backend import _image_environment
from kubernetes_api import api_status, free_ports, serving, stop_processes

TFJOBS = re.compile(r"/apis/kubeflow\.org/v1/namespaces/([^/]+)/tfjobs(?:/([^/]+))?")
PODS = re.compile(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?")


@dataclass
class Replica:
    pod: str
    type: str  # lower case, as in TF_CONFIG and the pod's label
    index: int
    image: str
    command: list[str]
    log: Path
    process: subprocess.Popen | None = None
    exit_code: int | None = None
    tf_config: str = ""

    @property
    def phase(self) -> str:
        if self.process is None:
            return "Pending"
        if self.exit_code is None:
            return "Running"
        return "Succeeded" if self.exit_code == 0 else "Failed"


@dataclass
class Job:
    namespace: str
    name: str
    manifest: dict
    replicas: list[Replica]
    conditions: list[dict] = field(default_factory=list)
    deleted: bool = False

    def condition(self, kind: str, reason: str, message: str) -> None:
        for existing in self.conditions:
            if existing["type"] == "Running" and kind in ("Succeeded", "Failed"):
                existing["status"] = "False"
        self.conditions.append(
            {"type": kind, "status": "True", "reason": reason, "message": message}
        )

    def ended(self) -> bool:
        return any(c["type"] in ("Succeeded", "Failed") for c in self.conditions)


class FakeOperator:
    """The API server's TFJobs and pods, and the operator that runs them."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.jobs: dict[tuple[str, str], Job] = {}
        self.requests: list[tuple[str, str]] = []
        self.pending_reason: tuple[str, str] | None = None  # pods never start: (reason, message)
        self.kill_when: dict[str, str] = {}  # pod name suffix -> a line that gets it killed
        self._lock = threading.RLock()
        self.deleted: list[str] = []

    # --- the API ---

    def handle(self, method: str, path: str, query: dict, body: dict) -> tuple[int, object]:
        self.requests.append((method, path))
        match = TFJOBS.fullmatch(path)
        if match:
            namespace, name = match.groups()
            if method == "POST" and not name:
                return self._create(namespace, body)
            job = self.jobs.get((namespace, name))
            if job is None:
                return 404, api_status(404, "NotFound", f'tfjobs.kubeflow.org "{name}" not found')
            if method == "GET":
                return 200, self._tfjob(job)
            if method == "DELETE":
                self._delete(job)
                return 200, api_status(200, "Success", "deleted")
        match = PODS.fullmatch(path)
        if match and method == "GET":
            namespace, name, log = match.groups()
            replicas = {r.pod: (job, r) for job in self._jobs(namespace) for r in job.replicas}
            if not name:
                selector = dict(
                    term.split("=", 1) for term in query.get("labelSelector", [""])[0].split(",")
                )
                pods = [
                    self._pod(job, replica)
                    for job, replica in replicas.values()
                    if all(self._labels(job, replica).get(k) == v for k, v in selector.items())
                ]
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}
            if name not in replicas:
                return 404, api_status(404, "NotFound", f'pods "{name}" not found')
            job, replica = replicas[name]
            if log:
                return 200, replica.log.read_text() if replica.log.exists() else ""
            return 200, self._pod(job, replica)
        return 404, api_status(404, "NotFound", f"{method} {path}")

    def _jobs(self, namespace: str) -> list[Job]:
        return [job for (ns, _), job in self.jobs.items() if ns == namespace and not job.deleted]

    def _create(self, namespace: str, manifest: dict) -> tuple[int, object]:
        name = manifest["metadata"]["name"]
        specs = manifest.get("spec", {}).get("tfReplicaSpecs") or {}
        problem = _invalid(specs)
        if problem:
            return 422, api_status(422, "Invalid", problem)
        replicas = []
        for rtype, spec in sorted(specs.items()):
            container = next(
                c for c in spec["template"]["spec"]["containers"] if c["name"] == "tensorflow"
            )
            for index in range(spec.get("replicas", 1)):
                pod = f"{name}-{rtype.lower()}-{index}"
                replicas.append(
                    Replica(
                        pod,
                        rtype.lower(),
                        index,
                        container["image"],
                        container.get("command", []) + container.get("args", []),
                        self.logs / f"{pod}.log",
                    )
                )
        job = Job(namespace, name, manifest, replicas)
        job.condition("Created", "TFJobCreated", f"TFJob {name} is created.")
        with self._lock:
            self.jobs[(namespace, name)] = job
        if self.pending_reason is None:
            self._start(job)
        return 201, self._tfjob(job)

    def _start(self, job: Job) -> None:
        ports = free_ports(len(job.replicas))
        cluster: dict[str, list[str]] = {}
        for replica, port in zip(job.replicas, ports):
            cluster.setdefault(replica.type, []).append(f"127.0.0.1:{port}")
        for replica in job.replicas:
            env = _image_environment()
            if len(job.replicas) > 1:
                replica.tf_config = json.dumps(
                    {
                        "cluster": cluster,
                        "task": {"type": replica.type, "index": replica.index},
                        "environment": "cloud",
                    }
                )
                env["TF_CONFIG"] = replica.tf_config
            env["HOSTNAME"] = replica.pod
            replica.process = subprocess.Popen(
                replica.command,
                # Not the repository: in the image, the project is an installed wheel.
                cwd=self.logs,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            threading.Thread(target=self._follow, args=(job, replica), daemon=True).start()
        job.condition("Running", "TFJobRunning", f"TFJob {job.namespace}/{job.name} is running.")

    def _follow(self, job: Job, replica: Replica) -> None:
        """Copies the replica's output to its log, kills it on cue, and records its end."""
        cue = next((line for s, line in self.kill_when.items() if replica.pod.endswith(s)), None)
        with open(replica.log, "w") as log:
            for line in replica.process.stdout:
                log.write(line)
                log.flush()
                if cue and cue in line:
                    cue = None
                    replica.process.kill()
        replica.exit_code = replica.process.wait()
        self._update(job)

    def _update(self, job: Job) -> None:
        with self._lock:
            if job.ended() or job.deleted:
                return
            failed = [r for r in job.replicas if r.phase == "Failed"]
            if failed:
                kind = failed[0].type.capitalize()
                job.condition(
                    "Failed",
                    "TFJobFailed",
                    f"TFJob {job.namespace}/{job.name} has failed because {len(failed)} "
                    f"{kind} replica(s) failed.",
                )
                self._stop(job)  # cleanPodPolicy Running
            elif any(r.type == "chief" and r.phase == "Succeeded" for r in job.replicas):
                job.condition(
                    "Succeeded",
                    "TFJobSucceeded",
                    f"TFJob {job.namespace}/{job.name} successfully completed.",
                )

    def _stop(self, job: Job) -> None:
        stop_processes([replica.process for replica in job.replicas if replica.process])

    def _delete(self, job: Job) -> None:
        job.deleted = True
        self._stop(job)
        self.deleted.append(job.name)

    # --- what the API answers ---

    def _tfjob(self, job: Job) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for replica in job.replicas:
            kind = replica.type.capitalize()
            key = {"Running": "active", "Succeeded": "succeeded", "Failed": "failed"}.get(
                replica.phase
            )
            if key:
                counts.setdefault(kind, {})
                counts[kind][key] = counts[kind].get(key, 0) + 1
        return {
            **job.manifest,
            "status": {"conditions": job.conditions, "replicaStatuses": counts},
        }

    def _labels(self, job: Job, replica: Replica) -> dict[str, str]:
        return {
            "training.kubeflow.org/job-name": job.name,
            "training.kubeflow.org/replica-type": replica.type,
            "training.kubeflow.org/replica-index": str(replica.index),
        }

    def _pod(self, job: Job, replica: Replica) -> dict:
        if replica.phase == "Pending":
            reason, message = self.pending_reason or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, "message": message}}
        elif replica.phase == "Running":
            state = {"running": {}}
        else:
            reason = "Completed" if replica.exit_code == 0 else "Error"
            state = {"terminated": {"exitCode": replica.exit_code, "reason": reason}}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": replica.pod,
                "namespace": job.namespace,
                "labels": self._labels(job, replica),
            },
            "spec": {"containers": [{"name": "tensorflow", "image": replica.image}]},
            "status": {
                "phase": replica.phase,
                "containerStatuses": [
                    {
                        "name": "tensorflow",
                        "image": replica.image,
                        "imageID": "",
                        "ready": replica.phase == "Running",
                        "restartCount": 0,
                        "state": state,
                    }
                ],
            },
        }

    def close(self) -> None:
        for job in list(self.jobs.values()):
            self._stop(job)


def _invalid(specs: dict) -> str:
    if not specs:
        return "TFJobSpec is not valid"
    chiefs = 0
    for rtype, spec in specs.items():
        containers = (spec or {}).get("template", {}).get("spec", {}).get("containers") or []
        if not containers:
            return f"TFJobSpec is not valid: containers definition expected in {rtype}"
        if any(not c.get("image") for c in containers):
            return f"TFJobSpec is not valid: Image is undefined in the container of {rtype}"
        if not any(c.get("name") == "tensorflow" for c in containers):
            return f"TFJobSpec is not valid: There is no container named tensorflow in {rtype}"
        chiefs += rtype in ("Chief", "Master")
    return "TFJobSpec is not valid: more than 1 chief/master found" if chiefs > 1 else ""


@pytest.fixture(scope="module")
def training_operator(tmp_path_factory):
    """The stand-in, and a kubeconfig for it in $KUBECONFIG while the module's tests run."""
    folder = tmp_path_factory.mktemp("training-operator")
    with serving(FakeOperator(folder), folder, "ml") as operator:
        yield operator
