"""Compiling for Kubeflow: the spec a KFP 2 backend accepts, wired and resourced as configured.

No cluster here: the data root is TensorFlow's in-memory file system (ram://),
which stands in for a bucket; compiling reads the labels file from it.
"""

import os
import re
import shutil
from pathlib import Path

import kfp.components
import pytest
import yaml

from kubeflow.runner import ENTRYPOINT, compile_pipeline
from pipeline.config import load_config
from pipeline.retrain import scheduled

IMAGE = "registry.example.com/image-classifier:test"
DATA_ROOT = "ram://bucket/data"  # the remote_data fixture's
GOLDEN = Path(__file__).parent / "golden" / "pipeline.yaml"
REPO = Path(__file__).resolve().parents[2]
TASKS_AND_UPSTREAM = {
    "ImportExampleGen": [],
    "ImportSchemaGen": [],
    "ImageValidator": ["ImportExampleGen", "ImportSchemaGen"],
    "StatisticsGen": ["ImageValidator", "ImportSchemaGen"],
    "SchemaGen": ["StatisticsGen"],
    "ExampleValidator": ["ImportSchemaGen", "StatisticsGen"],
    "DataGate": ["ExampleValidator", "ImageValidator", "ImportSchemaGen", "StatisticsGen"],
    "Trainer": ["DataGate", "ImageValidator"],
    "latest_blessed_model_resolver-model-blessing-resolver": [],
    "latest_blessed_model_resolver-model-resolver": [
        "latest_blessed_model_resolver-model-blessing-resolver"
    ],
    "Evaluator": ["ImageValidator", "Trainer", "latest_blessed_model_resolver-model-resolver"],
    "ModelReport": ["Evaluator", "ImageValidator", "Trainer"],
    "Pusher": ["Evaluator", "Trainer"],
}


def cluster_config(**overrides):
    settings = {
        "kubeflow.image": IMAGE,
        "kubeflow.pipeline_root": "gs://example-bucket/pipelines",
        "kubeflow.data_root": DATA_ROOT,
        "kubeflow.beam_pipeline_args": ["--runner=DataflowRunner", "--region=europe-west4"],
        "kubeflow.trainer.cpu": 8,
        "kubeflow.trainer.memory_gb": 32,
        "kubeflow.trainer.gpus": 4,
        "kubeflow.trainer.gpu_type": "nvidia.com/gpu",
        "training.phase1_epochs": 6,
        "training.phase2_epochs": 4,
        "training.phase1_learning_rate": 0.002,
        "output_dir": "/tmp/imgclf",
        **overrides,
    }
    return load_config(settings, environ={})


@pytest.fixture(scope="module")
def spec_file(remote_data, tmp_path_factory) -> Path:
    """The pipeline compiled once for a 4-GPU Trainer."""
    path = tmp_path_factory.mktemp("kubeflow") / "pipeline.yaml"
    compile_pipeline(cluster_config(), str(path))
    return path


@pytest.fixture(scope="module")
def spec(spec_file) -> dict:
    return yaml.safe_load(spec_file.read_text())


def executor_of(spec: dict, task: str) -> dict:
    label = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    return spec["deploymentSpec"]["executors"][label["executorLabel"]]


def test_the_spec_is_what_a_kfp_2_backend_accepts(spec_file, spec):
    assert len(list(yaml.safe_load_all(spec_file.read_text()))) == 1
    assert spec["schemaVersion"] == "2.1.0"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", spec["pipelineInfo"]["name"])
    assert spec["root"]["dag"]["tasks"]
    # kfp's own loader reads it as a pipeline with every task.
    loaded = kfp.components.load_component_from_file(str(spec_file))
    assert set(loaded.pipeline_spec.root.dag.tasks) == set(TASKS_AND_UPSTREAM)


def upstream_of(task: dict) -> list[str]:
    """The tasks it waits for: named, or producing one of its input artifacts."""
    inputs = task.get("inputs", {}).get("artifacts", {}).values()
    producers = {spec["taskOutputArtifact"]["producerTask"] for spec in inputs}
    return sorted(producers | set(task.get("dependentTasks", [])))


def test_every_component_is_present_with_its_upstream_tasks(spec):
    tasks = spec["root"]["dag"]["tasks"]
    assert {name: upstream_of(task) for name, task in tasks.items()} == {
        name: sorted(upstream) for name, upstream in TASKS_AND_UPSTREAM.items()
    }


def test_every_container_runs_the_configured_image_and_entrypoint(spec):
    containers = [
        executor["container"]
        for executor in spec["deploymentSpec"]["executors"].values()
        if "container" in executor
    ]
    assert len(containers) == 11  # every task but the two resolver queries
    for container in containers:
        assert container["image"] == IMAGE
        assert container["command"] == ENTRYPOINT
        assert "--runner=DataflowRunner" in container["args"]


def test_only_the_trainer_asks_for_gpus_cpu_and_memory(spec):
    assert executor_of(spec, "Trainer")["container"]["resources"] == {
        "accelerator": {"count": "4", "type": "nvidia.com/gpu"},
        "cpuLimit": 8.0,
        "memoryLimit": 32.0,
    }
    others = [name for name in TASKS_AND_UPSTREAM if name != "Trainer"]
    for name in others:
        assert "resources" not in executor_of(spec, name).get("container", {}), name


def test_epochs_learning_rates_and_data_root_are_run_time_parameters(spec):
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared == {
        "data_root": {"parameterType": "STRING", "defaultValue": DATA_ROOT, "isOptional": True},
        "phase1_epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 6, "isOptional": True},
        "phase2_epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 4, "isOptional": True},
        "phase1_learning_rate": {
            "parameterType": "NUMBER_DOUBLE",
            "defaultValue": 0.002,
            "isOptional": True,
        },
        # Unset in the configuration: a tenth of phase 1's, as the Trainer would use.
        "phase2_learning_rate": {
            "parameterType": "NUMBER_DOUBLE",
            "defaultValue": 0.0002,
            "isOptional": True,
        },
    }
    tasks = spec["root"]["dag"]["tasks"]
    trainer_inputs = tasks["Trainer"]["inputs"]["parameters"]
    for name in ("phase1_epochs", "phase2_epochs", "phase1_learning_rate", "phase2_learning_rate"):
        assert trainer_inputs[name] == {"componentInputParameter": name}
    assert tasks["ImportExampleGen"]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": "data_root"
    }


def test_the_trainer_reads_the_cluster_data_with_one_replica_per_gpu(spec):
    trainer_inputs = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    custom_config = yaml.safe_load(trainer_inputs["custom_config"]["runtimeValue"]["constant"])
    assert custom_config["data"]["root"] == DATA_ROOT
    assert custom_config["training"]["cpu_replicas"] == 1


def test_the_spec_matches_the_golden_file(spec_file):
    """Fails on any change to the compiled pipeline. On purpose? Refresh the file:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/kubeflow/test_runner.py
    """
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        shutil.copyfile(spec_file, GOLDEN)
    compiled = yaml.safe_load(spec_file.read_text())
    golden = yaml.safe_load(GOLDEN.read_text())
    # The sdk version names the TFX release, which constraints.txt pins.
    assert compiled == golden, "The compiled pipeline changed; see the docstring to accept it."


def test_the_dockerfile_builds_on_the_pinned_tfx_and_runs_the_entrypoint():
    dockerfile = (REPO / "kubeflow" / "Dockerfile").read_text()
    pinned = re.search(r"^tfx==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    assert re.search(r"^FROM tensorflow/tfx:(\S+)$", dockerfile, re.M).group(1) == pinned
    assert "ENV TF_USE_LEGACY_KERAS=1" in dockerfile
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1)
    assert yaml.safe_load(entrypoint) == ENTRYPOINT
    assert "-c constraints.txt" in dockerfile


def test_a_local_path_for_the_cluster_is_refused():
    with pytest.raises(ValueError, match=r"kubeflow.pipeline_root.*local path.*pods cannot read"):
        cluster_config(**{"kubeflow.pipeline_root": "/home/me/pipelines"})
    with pytest.raises(ValueError, match=r"kubeflow\.image, kubeflow\.data_root"):
        load_config(
            {"kubeflow.pipeline_root": "gs://b/p", "data.root": "/data"}, environ={}
        ).for_kubeflow()


def test_the_output_must_be_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"\*\.yaml"):
        compile_pipeline(cluster_config(), str(tmp_path / "pipeline.json"))


def test_the_example_cluster_configuration_is_complete():
    config = load_config(environ={"IMGCLF_CONFIG": str(REPO / "configs" / "cluster.example.yaml")})
    cluster = config.for_kubeflow()
    assert cluster.pipeline_root == "gs://my-bucket/pipelines"
    assert cluster.data.labels_path == "gs://my-bucket/flowers/labels.txt"
    assert cluster.serving_model_dir == "gs://my-bucket/serving/image_classifier"
    assert cluster.beam_pipeline_args[0] == "--runner=DataflowRunner"
    assert config.kubeflow.trainer.gpus == 4


def test_a_scheduled_pipeline_on_spans_warm_starts_and_compares_spans(remote_data, tmp_path):
    spans = cluster_config(
        **{"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
    )
    path = tmp_path / "scheduled.yaml"
    compile_pipeline(scheduled(spans), str(path))
    tasks = yaml.safe_load(path.read_text())["root"]["dag"]["tasks"]
    # Kubeflow knows only TFX's two strategies: the latest blessed model and the latest artifacts.
    assert "warm_start_model_resolver-model-resolver" in upstream_of(tasks["Trainer"])
    assert "base_model" in tasks["Trainer"]["inputs"]["artifacts"]
    gate_inputs = tasks["DataGate"]["inputs"]["artifacts"]
    assert {"previous_statistics", "previous_image_report"} <= set(gate_inputs)
    assert "previous_span_resolver" in upstream_of(tasks["DataGate"])
