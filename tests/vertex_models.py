"""A local stand-in for Vertex AI's Model Registry and endpoints, on 127.0.0.1.

The project's registry (modelstore/vertex_registry.py) reaches it through
google-cloud-aiplatform (REST transport, its API endpoint setting). It keeps
models with versions and endpoints with deployed models, following the
v1 API as the installed client has it (google/cloud/aiplatform_v1:
model_service UploadModel, GetModel, ListModels, ListModelVersions;
endpoint_service CreateEndpoint, GetEndpoint, ListEndpoints, UpdateEndpoint,
DeployModel, UndeployModel; prediction_service Predict) and Vertex AI's
documentation:

- UploadModel with `parentModel` adds a version to that model (ids 1, 2, ...),
  the new one default when asked; without it, a new model. Aliases are unique
  within a model. Long-running operations are answered done.
- DeployModel starts the model's server, as Vertex AI starts its container:
  here a real process (model_server.py) loading the version's `artifactUri`
  as TF Serving would; the operation fails if it never says `ready`. Its
  `trafficSplit` ("0" standing for the model being deployed) must add up to
  100 and becomes the endpoint's.
- UndeployModel stops the server; a deployed model with traffic cannot be
  undeployed unless the request's `trafficSplit` takes it away.
- Predict answers from one deployed model, chosen by the traffic split (here
  in turn, in proportion), and names it in `deployedModelId`.

A test can make a version's server answer nothing (`silent_versions`).
Below the stand-in: a serving folder of versions that each answer one class.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import google.auth
import numpy as np
import tf_keras as keras
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform.utils import gcs_utils, resource_manager_utils

from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.modelstore.serving_folder import PROVENANCE_FILE, push
from imgclf.trainer.export import export_model
from imgclf.trainer.model import OUTPUT_NAME
from imgclf.trainer.warmup import warmup_requests, write_warmup_requests
from json_http import send_json
from quick_training import MAX_PIXELS

PROJECT, REGION = "my-project", "europe-west4"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SERVER = Path(__file__).with_name("model_server.py")
DEFAULT = "default"  # the alias of a model's default version
START_DEADLINE_SECONDS = 120
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
SIZE = 32  # the test versions' image size
ANSWER_DEADLINE_SECONDS = 60
_DISPLAY_NAME = re.compile(r'display_name="([^"]*)"')


@dataclass
class Deployed:
    id: str
    model: str  # the model's resource name, without a version
    version_id: str
    display_name: str
    process: subprocess.Popen
    answered: int = 0


@dataclass
class Endpoint:
    name: str
    display_name: str
    deployed: dict[str, Deployed] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    served: int = 0  # predictions answered, to share them out by the split

    def resource(self) -> dict:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "deployedModels": [
                {
                    "id": d.id,
                    "model": d.model,
                    "modelVersionId": d.version_id,
                    "displayName": d.display_name,
                }
                for d in self.deployed.values()
            ],
            "trafficSplit": self.traffic,
        }


class FakeVertexModels:
    def __init__(self):
        self.models: dict[str, list[dict]] = {}  # model name -> its versions' resources
        self.endpoints: dict[str, Endpoint] = {}
        self.silent_versions: set[str] = set()  # "<model name>@<version id>": no answers
        self.requests: list[tuple[str, str, dict]] = []
        self._lock = threading.Lock()
        self._ids = 100

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def handle(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append((method, path, body))
            return self._route(method, unquote(path.removeprefix("/v1/")), query, body)

    def _route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        if method == "POST" and path == f"{PARENT}/models:upload":
            return self._upload(body)
        if method == "GET" and path == f"{PARENT}/models":
            return 200, {"models": [v[-1] for v in self._named(self.models, query)]}
        if method == "GET" and path.endswith(":listVersions"):
            return 200, {"models": self.models[path.removesuffix(":listVersions")]}
        if method == "GET" and path.startswith(f"{PARENT}/models/"):
            return self._get_model(path)
        if method == "POST" and path == f"{PARENT}/endpoints":
            endpoint = Endpoint(f"{PARENT}/endpoints/{self._next_id()}", body["displayName"])
            self.endpoints[endpoint.name] = endpoint
            return 200, _done("CreateEndpointOperationMetadata", endpoint.resource(), "Endpoint")
        if method == "GET" and path == f"{PARENT}/endpoints":
            endpoints = [e for e in self.endpoints.values() if _matches(e.display_name, query)]
            return 200, {"endpoints": [e.resource() for e in endpoints]}
        name, _, verb = path.partition(":")
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return 404, _error(404, f"{path} not found")
        if method == "GET" and not verb:
            return 200, endpoint.resource()
        if method == "PATCH" and not verb:
            return self._set_traffic(endpoint, body.get("trafficSplit", {}))
        if verb == "deployModel":
            return self._deploy(endpoint, body)
        if verb == "undeployModel":
            return self._undeploy(endpoint, body)
        if verb == "predict":
            return self._predict(endpoint, body)
        return 404, _error(404, f"no route {method} {path}")

    def _named(self, models: dict, query: dict) -> list[list[dict]]:
        return [v for v in models.values() if _matches(v[-1]["displayName"], query)]

    def _upload(self, body: dict) -> tuple[int, dict]:
        model, parent = body["model"], body.get("parentModel")
        if parent and parent not in self.models:
            return 404, _error(404, f"parent model {parent} not found")
        name = parent or f"{PARENT}/models/{self._next_id()}"
        versions = self.models.setdefault(name, [])
        # "default" moves to the new version (the client sends it for is_default_version,
        # and a model's first version is its default); any other alias is unique.
        aliases = [alias for alias in model.get("versionAliases", []) if alias != DEFAULT]
        taken = {alias for version in versions for alias in version["versionAliases"]}
        if set(aliases) & taken:
            return 400, _error(400, f"version aliases {sorted(set(aliases) & taken)} are taken")
        version = {**model, "name": name, "versionId": str(len(versions) + 1)}
        if DEFAULT in model.get("versionAliases", []) or not versions:
            for earlier in versions:
                earlier["versionAliases"] = [a for a in earlier["versionAliases"] if a != DEFAULT]
            aliases = [DEFAULT, *aliases]
        version["versionAliases"] = aliases
        versions.append(version)
        response = {"model": name, "modelVersionId": version["versionId"]}
        return 200, _done("UploadModelOperationMetadata", response, "UploadModelResponse")

    def _get_model(self, path: str) -> tuple[int, dict]:
        name, _, version_id = path.partition("@")
        versions = self.models.get(name)
        if not versions:
            return 404, _error(404, f"model {name} not found")
        for version in versions:
            if version_id in ("", DEFAULT) and DEFAULT in version["versionAliases"]:
                return 200, version
            if version["versionId"] == version_id or version_id in version["versionAliases"]:
                return 200, version
        return 404, _error(404, f"model {path} not found")

    def _deploy(self, endpoint: Endpoint, body: dict) -> tuple[int, dict]:
        wanted = body["deployedModel"]
        name = wanted["model"].partition("@")[0]
        status, version = self._get_model(wanted["model"])
        if status != 200:
            return status, version
        split = {key: int(value) for key, value in body.get("trafficSplit", {"0": 100}).items()}
        if sum(split.values()) != 100:
            return 400, _error(400, f"traffic split {split} does not add up to 100")
        process = subprocess.Popen(
            [sys.executable, str(SERVER), version["artifactUri"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if _line(process, START_DEADLINE_SECONDS) != "ready":
            process.kill()
            return 200, {
                "name": f"{endpoint.name}/operations/{self._next_id()}",
                "done": True,
                "error": {"code": 9, "message": "Model server never became ready"},
            }
        deployed = Deployed(
            self._next_id(), name, version["versionId"], wanted.get("displayName", ""), process
        )
        endpoint.deployed[deployed.id] = deployed
        endpoint.traffic = {
            (deployed.id if key == "0" else key): value for key, value in split.items() if value
        }
        return 200, _done(
            "DeployModelOperationMetadata",
            {"deployedModel": {"id": deployed.id, "model": name}},
            "DeployModelResponse",
        )

    def _undeploy(self, endpoint: Endpoint, body: dict) -> tuple[int, dict]:
        deployed_id = body["deployedModelId"]
        split = {key: int(value) for key, value in body.get("trafficSplit", {}).items()}
        if split:
            endpoint.traffic = {key: value for key, value in split.items() if value}
        if endpoint.traffic.get(deployed_id):
            return 400, _error(400, f"deployed model {deployed_id} still has traffic")
        deployed = endpoint.deployed.pop(deployed_id)
        deployed.process.kill()
        deployed.process.wait(timeout=ANSWER_DEADLINE_SECONDS)
        return 200, _done("UndeployModelOperationMetadata", {}, "UndeployModelResponse")

    def _set_traffic(self, endpoint: Endpoint, split: dict) -> tuple[int, dict]:
        split = {key: int(value) for key, value in split.items()}
        if sum(split.values()) != 100 or set(split) - set(endpoint.deployed):
            return 400, _error(400, f"traffic split {split} is not of the deployed models")
        endpoint.traffic = {key: value for key, value in split.items() if value}
        return 200, endpoint.resource()

    def _predict(self, endpoint: Endpoint, body: dict) -> tuple[int, dict]:
        if not endpoint.traffic:
            return 400, _error(400, "the endpoint serves no deployed model")
        # Shared out in proportion: the n-th request goes where the split's running
        # total first passes n mod 100.
        turn, total = endpoint.served % 100, 0
        endpoint.served += 1
        chosen = None
        for deployed_id, share in sorted(endpoint.traffic.items()):
            total += share
            if turn < total:
                chosen = endpoint.deployed[deployed_id]
                break
        key = f"{chosen.model}@{chosen.version_id}"
        if key in self.silent_versions:
            return 503, _error(503, f"deployed model {chosen.id} is not answering")
        chosen.process.stdin.write(json.dumps(body["instances"]) + "\n")
        chosen.process.stdin.flush()
        answer = _line(chosen.process, ANSWER_DEADLINE_SECONDS)
        if answer is None:
            return 500, _error(500, f"deployed model {chosen.id} failed")
        chosen.answered += 1
        return 200, {
            "predictions": json.loads(answer),
            "deployedModelId": chosen.id,
            "model": chosen.model,
            "modelVersionId": chosen.version_id,
        }

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            for deployed in endpoint.deployed.values():
                deployed.process.kill()
                deployed.process.wait(timeout=ANSWER_DEADLINE_SECONDS)


def _matches(display_name: str, query: dict) -> bool:
    wanted = _DISPLAY_NAME.search(query.get("filter", [""])[0])
    return wanted is None or wanted.group(1) == display_name


def _line(process: subprocess.Popen, deadline: float) -> str | None:
    """The process's next line, or None when it ends or the deadline passes first."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(deadline)
    return lines[0].strip() if lines and lines[0] else None


def _done(metadata: str, response: dict, response_type: str) -> dict:
    return {
        "name": f"{PARENT}/operations/1",
        "metadata": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{metadata}"},
        "done": True,
        "response": {
            "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{response_type}",
            **response,
        },
    }


def _error(code: int, message: str) -> dict:
    return {"error": {"code": code, "message": message, "status": "FAILED_PRECONDITION"}}


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        status, answer = self.server.fake.handle(self.command, url.path, parse_qs(url.query), body)
        send_json(self, status, answer)

    do_GET = do_POST = do_PATCH = _serve

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def vertex_models(monkeypatch) -> Iterator[tuple[FakeVertexModels, str]]:
    """The stand-in served on 127.0.0.1, reached by google-cloud-aiplatform in this process:
    (its state, the API endpoint to give the client)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.fake = FakeVertexModels()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # No Google account here: anonymous credentials, and the project's number given.
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
    monkeypatch.setattr(resource_manager_utils, "get_project_number", lambda *a, **k: "1")
    # On a cluster the serving folder is gs://, which the client passes on as it is; here it
    # is a local folder, which the client would first copy to a staging bucket. The stand-in
    # reads local folders: the copy is left out.
    monkeypatch.setattr(gcs_utils, "stage_local_data_in_gcs", lambda data_path, **_: data_path)
    try:
        yield server.fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.fake.close()
        server.shutdown()
        server.server_close()


def _always(label: int) -> keras.Model:
    """A classifier that answers `label` whatever the image: which version answered shows."""
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    dense = keras.layers.Dense(len(DEFAULT_CLASSES), activation="softmax", name=OUTPUT_NAME)
    model = keras.Model(pixels, dense(keras.layers.GlobalAveragePooling2D()(pixels)))
    bias = np.zeros(len(DEFAULT_CLASSES), np.float32)
    bias[label] = 10.0
    dense.set_weights([np.zeros((3, len(DEFAULT_CLASSES)), np.float32), bias])
    return model


def an_example() -> bytes:
    record = next(iter(generate_split(DEFAULT_CLASSES, "eval", 1, size=40)))
    return to_example(record).SerializeToString()


def push_version(serving_dir: Path, label: int, span: int, accuracy: float, scratch: Path) -> None:
    """A version that always answers `label`, with its provenance and a warmup request."""
    export_dir = scratch / f"model-{label}-{span}"
    classes = list(DEFAULT_CLASSES)
    export_model(_always(label), str(export_dir), classes, SIZE, "image", {}, MAX_PIXELS)
    write_warmup_requests(str(export_dir), warmup_requests([an_example()], "image"))
    provenance = scratch / f"provenance-{label}-{span}.json"
    provenance.write_text(json.dumps({"span": span, "test_accuracy": accuracy}))
    push(str(export_dir), str(serving_dir), {PROVENANCE_FILE: str(provenance)})


def serving_versions(root: Path) -> Path:
    """A serving folder of two versions: 1 answers class 0 (span 1), 2 class 1 (span 2)."""
    serving_dir = root / "serving" / "shapes"
    for label, span, accuracy in ((0, 1, 0.8125), (1, 2, 0.875)):
        push_version(serving_dir, label, span, accuracy, root)
    return serving_dir
