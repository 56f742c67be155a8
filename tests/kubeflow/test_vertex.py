"""`imgclf kubeflow ...` with kubeflow.backend vertex: google-cloud-aiplatform against a fake API.

The fake answers the Vertex AI REST calls the client makes (create pipeline
job, create, list and pause schedules) and the Cloud Storage call aiplatform
makes first (does the pipeline root's bucket exist?) on 127.0.0.1, and records
them, so the tests check what Vertex would receive: the compiled spec, the
parameters, the pipeline root, the cron; and what the user reads when Vertex
says no. Nothing leaves the machine.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import google.auth
import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform.utils import resource_manager_utils

from imgclf.cli.main import main
from json_http import send_json

IMAGE = "registry.example.com/image-classifier:test"
PIPELINE_ROOT = "gs://example-bucket/pipelines"
PROJECT_NUMBER = "123456789012"
PROJECT, REGION = "my-project", "europe-west4"
PARENT = f"/v1/projects/{PROJECT}/locations/{REGION}"


SCHEDULE = {
    "name": f"{PARENT[4:]}/schedules/123",
    "displayName": "image-classifier-schedule",
    "cron": "0 3 * * *",
    "state": "ACTIVE",
}


class FakeVertex:
    def __init__(self):
        self.requests: list[tuple[str, str, dict, dict]] = []  # method, path, query, body
        self.failure: tuple[int, str] | None = None

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if self.failure:
            status, message = self.failure
            return status, {"error": {"code": status, "message": message, "status": "DENIED"}}
        if method == "GET" and path.startswith("/storage/v1/b/"):
            # Before submitting, aiplatform checks that the pipeline root's bucket exists
            # and belongs to the project (gcs_utils._verify_bucket_ownership).
            return 200, {"name": path.rsplit("/", 1)[1], "projectNumber": PROJECT_NUMBER}
        if method == "POST" and path == f"{PARENT}/pipelineJobs":
            return 200, {**body, "name": f"{PARENT[4:]}/pipelineJobs/job-1"}
        if method == "POST" and path == f"{PARENT}/schedules":
            return 200, {**body, "name": f"{PARENT[4:]}/schedules/123", "state": "ACTIVE"}
        if method == "GET" and path == f"{PARENT}/schedules":
            return 200, {"schedules": [SCHEDULE]}
        if method == "GET" and path == f"/v1/{SCHEDULE['name']}":
            return 200, SCHEDULE
        if method == "POST" and path.endswith(":pause"):
            return 200, {}
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}

    def sent(self, method: str, path: str) -> list[dict]:
        return [body for m, p, _, body in self.requests if (m, p) == (method, path)]


class _Handler(BaseHTTPRequestHandler):
    def _serve(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        fake = self.server.fake
        fake.requests.append((self.command, url.path, parse_qs(url.query), body))
        status, answer = fake.handle(self.command, url.path, body)
        send_json(self, status, answer)

    do_GET = do_POST = _serve

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_vertex(remote_data, monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.fake = FakeVertex()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    for name, value in {
        "IMGCLF_KUBEFLOW__BACKEND": "vertex",
        "IMGCLF_KUBEFLOW__PROJECT": PROJECT,
        "IMGCLF_KUBEFLOW__REGION": REGION,
        "IMGCLF_KUBEFLOW__API_ENDPOINT": endpoint,
        "IMGCLF_KUBEFLOW__IMAGE": IMAGE,
        "IMGCLF_KUBEFLOW__PIPELINE_ROOT": PIPELINE_ROOT,
        "IMGCLF_KUBEFLOW__DATA_ROOT": remote_data,
        "IMGCLF_OUTPUT_DIR": str(tmp_path / "outputs"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("IMGCLF_CONFIG", raising=False)
    # No Google account here: the client gets anonymous credentials instead of the default ones.
    monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
    # The Resource Manager API (gRPC) has no emulator: its answer for the project is given here,
    # else aiplatform retries it for about a minute before going on.
    monkeypatch.setattr(
        resource_manager_utils, "get_project_number", lambda project, **_: PROJECT_NUMBER
    )
    yield server.fake
    server.shutdown()
    server.server_close()


def compiled_spec(tmp_path) -> dict:
    return yaml.safe_load((tmp_path / "outputs" / "kubeflow" / "image-classifier.yaml").read_text())


def test_run_submits_a_pipeline_job_with_the_compiled_spec(fake_vertex, tmp_path, capsys):
    code = main(["kubeflow", "run", "--param", "phase1_epochs=10", "--param", "span=3"])
    out = capsys.readouterr().out
    assert code == 0, out
    (job,) = fake_vertex.sent("POST", f"{PARENT}/pipelineJobs")
    assert job["pipelineSpec"] == compiled_spec(tmp_path)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == PIPELINE_ROOT
    assert job["runtimeConfig"]["parameterValues"] == {"phase1_epochs": 10, "span": 3}
    assert [m for m, p, _, _ in fake_vertex.requests if p == "/storage/v1/b/example-bucket"]
    assert f"Created run projects/{PROJECT}/locations/{REGION}/pipelineJobs/job-1" in out


def test_schedule_creates_a_vertex_schedule(fake_vertex, tmp_path):
    assert main(["kubeflow", "schedule", "--cron", "0 3 * * *"]) == 0
    (schedule,) = fake_vertex.sent("POST", f"{PARENT}/schedules")
    assert schedule["cron"] == "0 3 * * *"
    assert schedule["displayName"] == "image-classifier-schedule"
    assert schedule["maxConcurrentRunCount"] == "1"
    job = schedule["createPipelineJobRequest"]["pipelineJob"]
    assert job["pipelineSpec"] == compiled_spec(tmp_path)
    assert job["runtimeConfig"]["gcsOutputDirectory"] == PIPELINE_ROOT


def test_schedules_lists_and_disable_pauses(fake_vertex, capsys):
    assert main(["kubeflow", "schedules"]) == 0
    assert "image-classifier-schedule" in capsys.readouterr().out
    assert main(["kubeflow", "disable", "123"]) == 0
    assert fake_vertex.sent("POST", f"{PARENT}/schedules/123:pause") == [{}]


def test_a_refusal_is_explained_without_a_traceback(fake_vertex, capsys):
    fake_vertex.failure = (403, "Permission 'aiplatform.pipelineJobs.create' denied")
    assert main(["kubeflow", "run"]) == 1
    err = capsys.readouterr().err
    assert "answered 403" in err and "not allowed" in err
    assert "aiplatform.pipelineJobs.create" in err
    assert "Traceback" not in err


def test_missing_project_is_named(fake_vertex, monkeypatch, capsys):
    monkeypatch.setenv("IMGCLF_KUBEFLOW__PROJECT", "")
    assert main(["kubeflow", "run"]) == 1
    assert "kubeflow.project" in capsys.readouterr().err
