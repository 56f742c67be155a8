"""A local stand-in for Vertex AI Training's CustomJob service, on 127.0.0.1.

The project's launcher (kubeflow/custom_job.py) reaches it through
google-cloud-aiplatform's JobServiceClient (REST transport, its API endpoint
setting) with real Google credentials, as google-auth reads them from
GOOGLE_APPLICATION_CREDENTIALS: a service account key made here, whose token
endpoint is this server. It runs each replica of each worker pool as a
local process, following:

- cloud.google.com/vertex-ai/docs/training/distributed-training: pool 0
  holds the primary replica (one), which reports the job's status as a
  whole; pool 1 the workers. Each replica gets CLUSTER_SPEC (pools named
  `workerpool0`, `workerpool1`; its `task` type is its pool) and TF_CONFIG
  (pool 0 as `chief`, pool 1 as `worker`), both with environment "cloud";
  the replicas' addresses become free local ports here.
- google/cloud/aiplatform/v1 custom_job.proto and job_state.proto (the
  installed client): PENDING, then RUNNING once the replicas run; SUCCEEDED
  when the primary replica exits 0; FAILED, with an `error` naming the
  replica ("The replica workerpool1-0 exited with a non-zero status of
  137."), as soon as any replica exits non-zero, the others then stopped;
  `:cancel` gives CANCELLING, then CANCELLED once the replicas are stopped.
  A container killed by a signal reports 128 + the signal, as Kubernetes does.
- The create request is refused (400) when pool 0 does not hold exactly one
  replica or a pool has no image or machine type, or names a TensorBoard
  instance without a base output directory.
- cloud.google.com/vertex-ai/docs/training/code-requirements (environment
  variables) and docs/experiments/tensorboard-training: with a
  `baseOutputDirectory`, each replica gets AIP_MODEL_DIR (`<base>/model/`),
  AIP_CHECKPOINT_DIR (`<base>/checkpoints/`) and AIP_TENSORBOARD_LOG_DIR
  (`<base>/logs/`), whose logs a connected TensorBoard instance shows.

A test can keep a job PENDING (no capacity) or kill a replica when a line
appears in its log.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend import _image_environment
from json_http import send_json
from kubernetes_api import free_ports, stop_processes

PROJECT, REGION = "my-project", "europe-west4"
JOBS = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+)/customJobs(?:/([^/:]+))?(:cancel)?")
TF_CONFIG_TYPES = ("chief", "worker", "ps", "evaluator")  # by pool, as the documentation says


@dataclass
class Replica:
    pool: int
    index: int
    command: list[str]
    log: Path
    env: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return f"workerpool{self.pool}-{self.index}"


@dataclass
class Job:
    name: str
    body: dict
    replicas: list[Replica]
    state: str = "JOB_STATE_PENDING"
    error: dict | None = None

    def resource(self) -> dict:
        answer = {**self.body, "name": self.name, "state": self.state}
        if self.error:
            answer["error"] = self.error
        return answer


class FakeVertexTraining:
    def __init__(self, logs: Path, endpoint: str):
        self.logs = logs
        self.endpoint = endpoint
        self.jobs: dict[str, Job] = {}
        self.created: list[dict] = []  # the request bodies, as sent
        self.cancelled: list[str] = []
        self.hold_pending = False
        self.kill_when: dict[str, str] = {}  # replica name -> a line that gets it killed
        self._lock = threading.RLock()

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if method == "POST" and path == "/token":
            return 200, {"access_token": "stand-in", "expires_in": 3600, "token_type": "Bearer"}
        match = JOBS.fullmatch(path)
        if not match:
            return 404, _error(404, f"no route {method} {path}")
        parent, job_id, cancel = match.groups()
        if method == "POST" and not job_id:
            return self._create(parent, body)
        job = self.jobs.get(f"{parent}/customJobs/{job_id}")
        if job is None:
            return 404, _error(404, f"CustomJob {job_id} not found")
        if method == "GET":
            return 200, job.resource()
        if method == "POST" and cancel:
            self.cancelled.append(job.name)
            with self._lock:
                if job.state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                    job.state = "JOB_STATE_CANCELLING"
            self._stop(job)
            with self._lock:
                job.state = "JOB_STATE_CANCELLED"
            return 200, {}
        return 404, _error(404, f"no route {method} {path}")

    def _create(self, parent: str, body: dict) -> tuple[int, dict]:
        self.created.append(body)
        pools = body.get("jobSpec", {}).get("workerPoolSpecs", [])
        if not pools or int(pools[0].get("replicaCount", 0)) != 1:
            return 400, _error(400, "workerPoolSpecs[0] must have exactly one replica")
        for number, pool in enumerate(pools):
            if not pool.get("containerSpec", {}).get("imageUri"):
                return 400, _error(400, f"workerPoolSpecs[{number}]: container image is required")
            if not pool.get("machineSpec", {}).get("machineType"):
                return 400, _error(400, f"workerPoolSpecs[{number}]: machine type is required")
        spec = body["jobSpec"]
        if spec.get("tensorboard") and not spec.get("baseOutputDirectory", {}).get(
            "outputUriPrefix"
        ):
            return 400, _error(400, "baseOutputDirectory is required when tensorboard is set")
        name = f"{parent}/customJobs/{len(self.jobs) + 1001}"
        replicas = [
            Replica(
                number,
                index,
                pool["containerSpec"].get("command", []) + pool["containerSpec"].get("args", []),
                self.logs / f"{name.rsplit('/', 1)[1]}-workerpool{number}-{index}.log",
            )
            for number, pool in enumerate(pools)
            for index in range(int(pool.get("replicaCount", 1)))
        ]
        job = Job(name, body, replicas)
        self.jobs[name] = job
        if not self.hold_pending:
            self._start(job)
        return 200, job.resource()

    def _start(self, job: Job) -> None:
        addresses = [f"127.0.0.1:{port}" for port in free_ports(len(job.replicas))]
        pools: dict[int, list[str]] = {}
        for replica, address in zip(job.replicas, addresses):
            pools.setdefault(replica.pool, []).append(address)
        for replica in job.replicas:
            cluster_spec = {
                "cluster": {f"workerpool{pool}": hosts for pool, hosts in pools.items()},
                "environment": "cloud",
                "task": {"type": f"workerpool{replica.pool}", "index": replica.index},
            }
            tf_config = {
                "cluster": {TF_CONFIG_TYPES[pool]: hosts for pool, hosts in pools.items()},
                "task": {"type": TF_CONFIG_TYPES[replica.pool], "index": replica.index},
                "environment": "cloud",
            }
            replica.env = {
                "CLUSTER_SPEC": json.dumps(cluster_spec),
                "TF_CONFIG": json.dumps(tf_config),
                **_output_folders(job.body["jobSpec"]),
            }
            replica.process = subprocess.Popen(
                replica.command,
                # Not the repository: in the image, the project is an installed wheel.
                cwd=self.logs,
                env={**_image_environment(), **replica.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            threading.Thread(target=self._follow, args=(job, replica), daemon=True).start()
        job.state = "JOB_STATE_RUNNING"

    def _follow(self, job: Job, replica: Replica) -> None:
        cue = self.kill_when.get(replica.name)
        with open(replica.log, "w") as log:
            for line in replica.process.stdout:
                log.write(line)
                log.flush()
                if cue and cue in line:
                    cue = None
                    replica.process.kill()
        code = replica.process.wait()
        replica.exit_code = 128 - code if code < 0 else code
        with self._lock:
            if job.state != "JOB_STATE_RUNNING":
                return
            if replica.exit_code != 0:
                job.state = "JOB_STATE_FAILED"
                job.error = {
                    "code": 3,
                    "message": f"The replica {replica.name} exited with a non-zero status of "
                    f"{replica.exit_code}.",
                }
            elif replica.pool == 0:
                job.state = "JOB_STATE_SUCCEEDED"
            else:
                return
        self._stop(job)

    def _stop(self, job: Job) -> None:
        stop_processes([replica.process for replica in job.replicas if replica.process])

    def close(self) -> None:
        for job in self.jobs.values():
            self._stop(job)


def _output_folders(spec: dict) -> dict:
    base = spec.get("baseOutputDirectory", {}).get("outputUriPrefix", "").rstrip("/")
    if not base:
        return {}
    return {
        "AIP_MODEL_DIR": f"{base}/model/",
        "AIP_CHECKPOINT_DIR": f"{base}/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": f"{base}/logs/",
    }


def _error(code: int, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}  # the token request is a form
        status, answer = self.server.fake.handle(self.command, url.path, body)
        send_json(self, status, answer)

    do_GET = do_POST = _serve

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    fake: FakeVertexTraining


def service_account_key(token_uri: str) -> dict:
    """A service account key file, as Google issues them, with a key made here."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "stand-in",
        "private_key": pem.decode(),
        "client_email": f"trainer@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@pytest.fixture(scope="module")
def vertex_training(tmp_path_factory):
    """The stand-in, its endpoint, and credentials for it in $GOOGLE_APPLICATION_CREDENTIALS."""
    folder = tmp_path_factory.mktemp("vertex-training")
    server = _Server(("127.0.0.1", 0), _Handler)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    server.fake = FakeVertexTraining(folder, endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    credentials = folder / "credentials.json"
    credentials.write_text(json.dumps(service_account_key(f"{endpoint}/token")))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(credentials))
        yield server.fake
    server.fake.close()
    server.shutdown()
    server.server_close()
