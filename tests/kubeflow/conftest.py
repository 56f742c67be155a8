"""A small stand-in for the Kubeflow Pipelines API (v2beta1), on 127.0.0.1.

It implements the endpoints the project's client uses, keeps what is created
in memory, records every request, and answers with an error status where a
test asks it to.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import tensorflow as tf

from imgclf.settings.data import DataConfig
from json_http import send_json
from training_operator import training_operator  # noqa: F401  (a fixture for this folder)
from vertex_training import vertex_training  # noqa: F401  (a fixture for this folder)

API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict
    body: dict
    upload: str = ""  # the uploaded pipeline file's text
    authorization: str = ""


@dataclass
class FakeKfp:
    host: str = ""
    requests: list[Request] = field(default_factory=list)
    pipelines: dict = field(default_factory=dict)  # id -> {"display_name", "versions": [...]}
    experiments: dict = field(default_factory=dict)
    recurring_runs: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)  # (method, path regex) -> (status, message)

    def fail(self, method: str, path_pattern: str, status: int, message: str) -> None:
        self.failures[(method, path_pattern)] = (status, message)

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == API + path]

    def handle(self, request: Request) -> tuple[int, dict]:
        for (method, pattern), (status, message) in self.failures.items():
            if request.method == method and re.fullmatch(API + pattern, request.path):
                return status, {"error": message, "message": message, "code": status}
        route = f"{request.method} {request.path.removeprefix(API)}"
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, route)
            if match:
                return handler(request, *match.groups())
        return 404, {"error": f"no route {route}", "message": f"no route {route}"}

    def _routes(self):
        return [
            (r"GET /healthz", lambda r: (200, {"multi_user": False})),
            (r"GET /pipelines", self._list_pipelines),
            (r"POST /pipelines/upload", self._upload),
            (r"POST /pipelines/upload_version", self._upload_version),
            (r"GET /pipelines/([^/]+)/versions", self._list_versions),
            (r"GET /experiments", self._list_experiments),
            (r"POST /experiments", self._create_experiment),
            (r"POST /runs", self._create_run),
            (r"POST /recurringruns", self._create_recurring_run),
            (r"GET /recurringruns", self._list_recurring_runs),
            (r"POST /recurringruns/([^/:]+):disable", self._disable),
        ]

    def _list_pipelines(self, request):
        name = _filtered_name(request)
        found = [
            {"pipeline_id": pid, "display_name": p["display_name"]}
            for pid, p in self.pipelines.items()
            if name in (None, p["display_name"])
        ]
        return 200, {"pipelines": found, "total_size": len(found)} if found else {}

    def _upload(self, request):
        pipeline_id = f"pipeline-{len(self.pipelines) + 1}"
        name = request.query["name"][0]
        version = {"pipeline_version_id": f"{pipeline_id}-v1", "display_name": name}
        self.pipelines[pipeline_id] = {"display_name": name, "versions": [version]}
        return 200, {"pipeline_id": pipeline_id, "display_name": name}

    def _upload_version(self, request):
        pipeline = self.pipelines[request.query["pipelineid"][0]]
        pipeline_id = request.query["pipelineid"][0]
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": f"{pipeline_id}-v{len(pipeline['versions']) + 1}",
            "display_name": request.query["name"][0],
        }
        pipeline["versions"].append(version)
        return 200, version

    def _list_versions(self, request, pipeline_id):
        return 200, {"pipeline_versions": self.pipelines[pipeline_id]["versions"]}

    def _list_experiments(self, request):
        name = _filtered_name(request)
        found = [e for e in self.experiments.values() if name in (None, e["display_name"])]
        return 200, {"experiments": found} if found else {}

    def _create_experiment(self, request):
        experiment_id = f"experiment-{len(self.experiments) + 1}"
        self.experiments[experiment_id] = {"experiment_id": experiment_id, **request.body}
        return 200, self.experiments[experiment_id]

    def _create_run(self, request):
        return 200, {"run_id": "run-1", **request.body}

    def _create_recurring_run(self, request):
        job_id = f"recurring-{len(self.recurring_runs) + 1}"
        self.recurring_runs[job_id] = {"recurring_run_id": job_id, **request.body}
        return 200, self.recurring_runs[job_id]

    def _list_recurring_runs(self, request):
        # As the real API names it (kfp_server_api reads this key), unlike its other lists.
        return 200, {"recurringRuns": list(self.recurring_runs.values())}

    def _disable(self, request, job_id):
        if job_id not in self.recurring_runs:
            return 404, {"message": f"recurring run {job_id} not found"}
        self.recurring_runs[job_id]["mode"] = "DISABLE"
        return 200, {}


def _filtered_name(request: Request) -> str | None:
    if "filter" not in request.query:
        return None
    predicates = json.loads(request.query["filter"][0])["predicates"]
    return next(p["stringValue"] for p in predicates if p["key"] == "display_name")


def _uploaded_file(content_type: str, raw: bytes) -> str:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "uploadfile":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no uploadfile in the multipart body")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body, upload = {}, ""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            upload = _uploaded_file(content_type, raw)
        elif raw:
            body = json.loads(raw)
        request = Request(
            self.command,
            url.path,
            parse_qs(url.query),
            body,
            upload,
            self.headers.get("Authorization", ""),
        )
        self.server.fake.requests.append(request)
        status, answer = self.server.fake.handle(request)
        send_json(self, status, answer)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    fake: FakeKfp


@pytest.fixture(scope="session")
def remote_data(sample_data) -> str:
    """The sample data's labels and schema in a 'bucket': TensorFlow's in-memory file system."""
    root = "ram://bucket/data"
    local, remote = DataConfig(root=sample_data), DataConfig(root=root)
    tf.io.gfile.makedirs(root)
    tf.io.gfile.copy(local.labels_path, remote.labels_path, overwrite=True)
    tf.io.gfile.copy(local.schema_path, remote.schema_path, overwrite=True)
    return root


@pytest.fixture
def fake_kfp():
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeKfp(host=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.fake
    server.shutdown()
    server.server_close()
