"""The container entrypoint: TFX's runner, taking the artifacts open-source KFP 2's driver sends.

The driver's artifact types cannot be produced here without a cluster; these
tests give TFX 1.16's own parser the shapes reported for it (an empty instance
schema, a generic `system.*` title) and run a real executor through the entrypoint.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow_data_validation as tfdv
import yaml
from google.protobuf import json_format, text_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

from kubeflow.entrypoint import fill_input_types

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
