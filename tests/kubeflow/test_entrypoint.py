"""The container entrypoint: TFX's runner, taking the artifacts open-source KFP 2's driver sends.

The driver's artifact types cannot be produced here without a cluster; these
tests give TFX 1.16's own parser the shapes reported for it (an empty instance
schema, a generic `system.*` title) and run a real executor through the entrypoint.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import tensorflow_data_validation as tfdv
import yaml
from google.protobuf import json_format, text_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

from imgclf.kubeflow.entrypoint import fill_input_types, output_uris, remove_folder_markers

GOLDEN = Path(__file__).parent / "golden" / "pipeline.yaml"
REPO = Path(__file__).resolve().parents[2]


def schema_gen_container() -> tuple[dict, dict]:
    """SchemaGen's container and component from the compiled pipeline."""
    spec = yaml.safe_load(GOLDEN.read_text())
    container = spec["deploymentSpec"]["executors"]["SchemaGen_executor"]["container"]
    return container, spec["components"]["SchemaGen"]


def inputs_spec_json(container: dict) -> str:
    args = container["args"]
    return args[args.index("--json_serialized_inputs_spec_args") + 1]


def executor_input(statistics_uri: str, statistics_type: dict, out: Path) -> dict:
    _, component = schema_gen_container()
    schema_type = component["outputDefinitions"]["artifacts"]["schema"]["artifactType"]
    return {
        "inputs": {
            "artifacts": {
                "statistics": {
                    "artifacts": [
                        {
                            "name": "statistics",
                            "uri": statistics_uri,
                            "type": statistics_type,
                            "metadata": {"split_names": '["train"]'},
                        }
                    ]
                }
            },
            "parameterValues": {"exclude_splits": "[]", "infer_feature_shape": 1},
        },
        "outputs": {
            "artifacts": {
                "schema": {
                    "artifacts": [
                        {"name": "schema", "uri": str(out / "schema"), "type": schema_type}
                    ]
                }
            },
            "outputFile": str(out / "executor_output.json"),
        },
    }


def parse_inputs(executor_input_json: str) -> dict:
    message = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(executor_input_json, message, ignore_unknown_fields=True)
    return kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.inputs.artifacts)


@pytest.mark.parametrize(
    "driver_type",
    [{"instanceSchema": ""}, {"schemaTitle": "system.Artifact"}, {"schemaTitle": "system.Dataset"}],
    ids=["empty-schema", "system-artifact", "system-dataset"],
)
def test_tfx_fails_on_the_drivers_types_and_reads_them_once_filled(driver_type, tmp_path):
    container, _ = schema_gen_container()
    raw = json.dumps(executor_input("gs://b/stats", driver_type, tmp_path))
    with pytest.raises((AttributeError, ImportError)):
        parse_inputs(raw)
    statistics = parse_inputs(fill_input_types(raw, inputs_spec_json(container)))["statistics"][0]
    assert statistics.TYPE_NAME == "ExampleStatistics"
    assert statistics.split_names == '["train"]'


def test_types_that_name_a_tfx_class_are_left_alone(tmp_path):
    container, component = schema_gen_container()
    declared = component["inputDefinitions"]["artifacts"]["statistics"]["artifactType"]
    custom = {"schemaTitle": "tfx.ExampleStatistics"}
    raw = json.dumps(executor_input("gs://b/stats", custom, tmp_path))
    filled = json.loads(fill_input_types(raw, inputs_spec_json(container)))
    assert filled["inputs"]["artifacts"]["statistics"]["artifacts"][0]["type"] == custom != declared
    assert fill_input_types(raw, None) == raw


def test_a_real_executor_runs_through_the_entrypoint(sample_data, tmp_path):
    """SchemaGen, as its compiled container runs it, on statistics typed as the driver may."""
    statistics_uri = tmp_path / "statistics"
    stats = tfdv.generate_statistics_from_tfrecord(os.path.join(sample_data, "train", "*"))
    (statistics_uri / "Split-train").mkdir(parents=True)
    (statistics_uri / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    container, _ = schema_gen_container()
    invocation = executor_input(str(statistics_uri), {"schemaTitle": "system.Artifact"}, tmp_path)
    args = [json.dumps(invocation) if arg == "{{$}}" else arg for arg in container["args"]]
    command = [sys.executable, *container["command"][1:], *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    schema = text_format.Parse(
        (tmp_path / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    assert {feature.name for feature in schema.feature} >= {"image", "label"}
    assert (tmp_path / "executor_output.json").exists()


class _FakeGcs(BaseHTTPRequestHandler):
    """The two calls of GCS's JSON API the entrypoint makes: list objects and delete one."""

    def do_GET(self):
        url = urlparse(self.path)
        prefix = parse_qs(url.query).get("prefix", [""])[0]
        items = [
            {"name": name, "bucket": "bucket", "size": str(len(data))}
            for name, data in sorted(self.server.objects.items())
            if name.startswith(prefix)
        ]
        self._answer(200, {"kind": "storage#objects", "items": items})

    def do_DELETE(self):
        name = unquote(urlparse(self.path).path.split("/o/", 1)[1])
        self.server.objects.pop(name)
        self._answer(204, None)

    def _answer(self, status, body):
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def download_as_the_launcher_does(objects: dict, key: str, local: Path) -> None:
    """object_store.go DownloadBlob: every object under the key becomes a file under `local`."""
    for name in sorted(objects):
        if name.startswith(key):
            path = local / name[len(key) :].lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(objects[name])


@pytest.fixture
def fake_gcs(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGcs)
    server.objects = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    yield server.objects
    server.shutdown()
    server.server_close()


def test_folder_markers_under_an_output_artifact_are_deleted(fake_gcs, tmp_path):
    """TensorFlow's GCS file system leaves `folder/` objects; the launcher trips over them."""
    key = "root/run-1/Trainer/model"
    fake_gcs.update(
        {
            f"{key}/": b"",
            f"{key}/Format-Serving/": b"",
            f"{key}/Format-Serving/saved_model.pb": b"graph",
            f"{key}/Format-Serving/variables/": b"",
            f"{key}/Format-Serving/empty.txt": b"",  # an empty file, not a marker: kept
            "root/run-1/Trainer/model_run/": b"",  # another artifact's: not touched
        }
    )
    with pytest.raises((NotADirectoryError, FileExistsError, IsADirectoryError)):
        download_as_the_launcher_does(dict(fake_gcs), key, tmp_path / "before")
    removed = remove_folder_markers(f"gs://bucket/{key}")
    assert sorted(removed) == [
        f"{key}/",
        f"{key}/Format-Serving/",
        f"{key}/Format-Serving/variables/",
    ]
    assert set(fake_gcs) == {
        f"{key}/Format-Serving/saved_model.pb",
        f"{key}/Format-Serving/empty.txt",
        "root/run-1/Trainer/model_run/",
    }
    download_as_the_launcher_does(dict(fake_gcs), key, tmp_path / "after")
    assert (tmp_path / "after" / "Format-Serving" / "saved_model.pb").read_bytes() == b"graph"


def test_the_output_artifacts_are_read_from_the_executor_input():
    invocation = {
        "outputs": {
            "artifacts": {
                "model": {"artifacts": [{"uri": "gs://b/root/Trainer/model"}]},
                "model_run": {"artifacts": [{"uri": "gs://b/root/Trainer/model_run"}]},
            }
        }
    }
    assert output_uris(json.dumps(invocation)) == [
        "gs://b/root/Trainer/model",
        "gs://b/root/Trainer/model_run",
    ]
