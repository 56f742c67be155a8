"""A local stand-in for the Kubernetes API with KServe's InferenceService controller, on 127.0.0.1.

The project's rollout (modelstore/kserve.py) speaks to it with the
`kubernetes` client through a kubeconfig, as it would to a cluster. It keeps
InferenceServices (serving.kserve.io/v1beta1) and serves them as KServe in
serverless mode does, from its source (kserve/kserve):

- pkg/controller/v1beta1/inferenceservice/utils/utils.go (ValidateStorageURI):
  a `storageUri` with a scheme the storage initializer does not read is
  refused at admission (here, with the webhook's message, 400).
- The usual object rules: create of an existing name 409; replace (PUT) must
  carry the current `resourceVersion` (409 otherwise); `metadata.generation`
  grows when the spec changes; `status.observedGeneration` once reconciled.
- pkg/apis/serving/v1beta1/inference_service_validation.go: `storageUris`
  and `model.storageUri` not both; each mount path absolute, without `..`.
- A spec change makes a new revision `<name>-predictor-<generation, 5 digits>`
  (Knative's naming): its "pod" copies each of `storageUris` to its mount path
  under /mnt/models once (the storage initializer; file:// and local paths
  here) and runs TF Serving with the arguments of
  config/runtimes/kserve-tensorflow-serving.yaml (here tests/tf_serving.py, a
  real process). Ready once it says so; if it ends first, the `Ready`
  condition is False with reason RevisionFailed and its error, and the
  traffic stays where it was.
- pkg/apis/serving/v1beta1/inference_service_status.go (PropagateStatus):
  without `canaryTrafficPercent` the new ready revision takes 100% and becomes
  `latestRolledoutRevision` (the one before, `previousRolledoutRevision`);
  with it, the new revision takes that share and the last rolled-out one the
  rest. Revisions without traffic are scaled to zero (their process stopped).
- `status.url` and `status.address.url` lead to a router that spreads
  requests over the revisions by their traffic (here in turn, in proportion).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from imgclf.modelstore.kserve import MODEL_BASE_PATH
from imgclf.settings.cluster import KSERVE_STORAGE_PREFIXES
from kubernetes_api import api_status, free_ports, stop_processes

SERVICES = re.compile(
    r"/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?"
)
TF_SERVING = Path(__file__).with_name("tf_serving.py")
START_DEADLINE_SECONDS = 120


@dataclass
class Revision:
    name: str
    process: subprocess.Popen
    port: int
    log: Path  # the server's stderr


class FakeKServe:
    def __init__(self, folder: Path):
        self.folder = folder
        self.services: dict[tuple[str, str], dict] = {}
        self.revisions: dict[str, Revision] = {}
        self.lock = threading.RLock()
        self.resource_version = 0
        self.router = _Router(self)

    def handle(self, method: str, path: str, query: dict, body: dict) -> tuple[int, object]:
        match = SERVICES.fullmatch(path)
        if not match:
            return 404, api_status(404, "NotFound", f"{method} {path}")
        namespace, name = match.groups()
        with self.lock:
            if method == "POST" and name is None:
                return self._create(namespace, body)
            found = self.services.get((namespace, name))
            if found is None:
                message = f'inferenceservices.serving.kserve.io "{name}" not found'
                return 404, api_status(404, "NotFound", message)
            if method == "GET":
                return 200, found
            if method == "PUT":
                return self._replace(found, body)
        return 405, api_status(405, "MethodNotAllowed", method)

    def _create(self, namespace: str, body: dict) -> tuple[int, object]:
        name = body["metadata"]["name"]
        if (namespace, name) in self.services:
            message = f'inferenceservices.serving.kserve.io "{name}" already exists'
            return 409, api_status(409, "AlreadyExists", message)
        if problem := _admission(body):
            return 400, api_status(400, "BadRequest", problem)
        service = json.loads(json.dumps(body))
        service["metadata"].update(namespace=namespace, generation=1)
        service["status"] = {"url": self.router.url, "address": {"url": self.router.url}}
        self.services[(namespace, name)] = service
        self._stamp(service)
        self._reconcile(service)
        return 201, service

    def _replace(self, service: dict, body: dict) -> tuple[int, object]:
        if body["metadata"].get("resourceVersion") != service["metadata"]["resourceVersion"]:
            message = (
                "the object has been modified; please apply your changes to the latest version"
            )
            return 409, api_status(409, "Conflict", message)
        if problem := _admission(body):
            return 400, api_status(400, "BadRequest", problem)
        if body["spec"] != service["spec"]:
            service["spec"] = json.loads(json.dumps(body["spec"]))
            service["metadata"]["generation"] += 1
            self._stamp(service)
            self._reconcile(service)
        return 200, service

    def _stamp(self, service: dict) -> None:
        self.resource_version += 1
        service["metadata"]["resourceVersion"] = str(self.resource_version)

    def _reconcile(self, service: dict) -> None:
        """A new revision for the spec's generation, started in the background."""
        name = f"{service['metadata']['name']}-predictor-{service['metadata']['generation']:05d}"
        status = service["status"]
        predictor = status.setdefault("components", {}).setdefault("predictor", {})
        predictor["latestCreatedRevision"] = name
        status["observedGeneration"] = service["metadata"]["generation"]
        _set_ready(status, "Unknown", "RevisionMissing", f'Revision "{name}" is starting.')
        model_dir = self.folder / name
        # The storage initializer: one copy, when the pod starts.
        for storage in service["spec"]["predictor"]["storageUris"]:
            mounted = Path(storage["mountPath"]).relative_to(MODEL_BASE_PATH)
            shutil.copytree(_local(storage["uri"]), model_dir / mounted)
        [port] = free_ports(1)
        log = self.folder / f"{name}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                str(TF_SERVING),
                f"--model_name={service['metadata']['name']}",
                f"--model_base_path={model_dir}",
                f"--rest_api_port={port}",
            ],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            start_new_session=True,
        )
        revision = Revision(name, process, port, log)
        self.revisions[name] = revision
        threading.Thread(target=self._start, args=(service, revision), daemon=True).start()

    def _start(self, service: dict, revision: Revision) -> None:
        ready = _first_line(revision.process, START_DEADLINE_SECONDS) == "ready"
        with self.lock:
            status = service["status"]
            if not ready:
                stop_processes([revision.process])
                error = (revision.log.read_text().strip().splitlines() or ["no output"])[-1]
                message = f'Revision "{revision.name}" failed with message: {error}.'
                _set_ready(status, "False", "RevisionFailed", message)
                self._stamp(service)
                return
            self._route(service, revision.name)
            _set_ready(status, "True", "", "")
            self._stamp(service)

    def _route(self, service: dict, ready: str) -> None:
        """The traffic once revision `ready` is ready: see the module's docstring."""
        predictor = service["status"]["components"]["predictor"]
        predictor["latestReadyRevision"] = ready
        canary = service["spec"]["predictor"].get("canaryTrafficPercent")
        stable = predictor.get("latestRolledoutRevision")
        if canary is not None and stable and stable != ready:
            predictor["traffic"] = [
                {"revisionName": ready, "percent": canary, "latestRevision": True},
                {"revisionName": stable, "percent": 100 - canary, "latestRevision": False},
            ]
        else:
            predictor["traffic"] = [{"revisionName": ready, "percent": 100, "latestRevision": True}]
            if stable != ready:
                predictor["previousRolledoutRevision"] = stable
                predictor["latestRolledoutRevision"] = ready
        serving = {target["revisionName"] for target in predictor["traffic"]}
        for name, revision in self.revisions.items():
            if name not in serving and revision.process.poll() is None:
                stop_processes([revision.process])

    def traffic(self, namespace: str, name: str) -> dict[str, int]:
        predictor = self.services[(namespace, name)]["status"]["components"]["predictor"]
        return {target["revisionName"]: target["percent"] for target in predictor["traffic"]}

    def running(self) -> list[str]:
        """The revisions whose server runs."""
        return sorted(name for name, r in self.revisions.items() if r.process.poll() is None)

    def close(self) -> None:
        stop_processes([revision.process for revision in self.revisions.values()])
        self.router.close()


def _admission(body: dict) -> str:
    predictor = body["spec"]["predictor"]
    storages = predictor.get("storageUris", [])
    if storages and "storageUri" in predictor.get("model", {}):
        return "Setting both StorageURI and StorageURIs is not supported."
    for storage in storages:
        uri, path = storage["uri"], storage.get("mountPath", MODEL_BASE_PATH)
        if not path.startswith("/") or ".." in path:
            return f"storage path must be absolute: {path}"
        if re.match(r"\w+?://", uri) and not uri.startswith(KSERVE_STORAGE_PREFIXES):
            return (
                f"storageUri, must be one of: [{', '.join(KSERVE_STORAGE_PREFIXES)}] or match "
                f"https://{{}}.blob.core.windows.net/{{}}/{{}} or be an absolute or relative "
                f"local path. StorageUri [{uri}] is not supported."
            )
    return ""


def _local(uri: str) -> str:
    """The folder a file:// (or plain) storage URI names: what this stand-in can copy."""
    return uri.removeprefix("file://")


def _set_ready(status: dict, value: str, reason: str, message: str) -> None:
    condition = {"type": "Ready", "status": value}
    if reason:
        condition.update(reason=reason, message=message)
    status["conditions"] = [condition]


def _first_line(process: subprocess.Popen, deadline: float) -> str | None:
    """The process's first line, or None when it ends or the deadline passes first."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(deadline)
    return lines[0].strip() if lines and lines[0] else None


class _Router:
    """The InferenceService's URL: each request to the next revision in the traffic's turn."""

    def __init__(self, fake: FakeKServe):
        self.fake = fake
        self.turn = 0
        handler = type("Handler", (_Forward,), {"router": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_port(self, host_service: tuple[str, str]) -> int:
        with self.fake.lock:
            turns = [
                name
                for name, percent in sorted(self.fake.traffic(*host_service).items())
                for _ in range(percent)
            ]
            self.turn += 1
            name = turns[(self.turn * 37) % len(turns)]  # 37 is prime to 100: every share in turn
            return self.fake.revisions[name].port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Forward(BaseHTTPRequestHandler):
    router: _Router

    def _forward(self) -> None:
        # One InferenceService per test's stand-in: its name is in the path, /v1/models/<name>.
        name = self.path.split("/")[3].split(":")[0]
        [key] = [key for key in self.router.fake.services if key[1] == name]
        port = self.router.next_port(key)
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{self.path}",
            data=self.rfile.read(length) if length else None,
            headers={"Content-Type": "application/json"},
            method=self.command,
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            payload = answer.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _forward

    def log_message(self, *args) -> None:
        pass
