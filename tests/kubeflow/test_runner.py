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
from tfx.utils import dependency_utils

from imgclf.kubeflow.cluster import for_kubeflow
from imgclf.kubeflow.entrypoint import ENTRYPOINT
from imgclf.kubeflow.runner import compile_pipeline
from imgclf.pipeline.retrain import scheduled
from imgclf.settings.base import ConfigError
from imgclf.settings.config import load_config

IMAGE = "registry.example.com/image-classifier:test"
DATA_ROOT = "ram://bucket/data"  # the remote_data fixture's
GOLDEN = Path(__file__).parent / "golden" / "pipeline.yaml"
REPO = Path(__file__).resolve().parents[2]
TASKS_AND_UPSTREAM = {
    "SpanResolver": [],
    "ImportExampleGen": ["SpanResolver"],
    "ImportSchemaGen": [],
    "ImageValidator": ["ImportExampleGen", "ImportSchemaGen"],
    "StatisticsGen": ["ImageValidator", "ImportSchemaGen"],
    "SchemaGen": ["StatisticsGen"],
    "ExampleValidator": ["ImportSchemaGen", "StatisticsGen"],
    "ServingHistory": ["ImportExampleGen"],
    "DataReport": [
        "ExampleValidator",
        "ImageValidator",
        "ImportSchemaGen",
        "ServingHistory",
        "StatisticsGen",
    ],
    "DataGate": [
        "DataReport",
        "ExampleValidator",
        "ImageValidator",
        "ImportSchemaGen",
        "ServingHistory",
        "StatisticsGen",
    ],
    "Trainer": ["DataGate", "ImageValidator", "ServingHistory"],
    "Evaluator": ["ImageValidator", "ServingHistory", "Trainer"],
    "ServingCheck": ["Trainer"],
    "Pusher": ["Evaluator", "ImageValidator", "ServingCheck", "StatisticsGen", "Trainer"],
    "ModelReport": ["Evaluator", "ImageValidator", "Pusher", "ServingCheck", "Trainer"],
}


DATAFLOW = {
    "runner": "dataflow",
    "project": "example-project",
    "region": "europe-west4",
    "temp_location": "gs://example-bucket/dataflow",
}
BEAM_STEPS = ("ImportExampleGen", "ImageValidator", "StatisticsGen", "Evaluator")


def cluster_config(**overrides):
    settings = {
        "kubeflow.image": IMAGE,
        "kubeflow.pipeline_root": "gs://example-bucket/pipelines",
        "kubeflow.data_root": DATA_ROOT,
        "kubeflow.beam": DATAFLOW,
        "kubeflow.tasks": {"ServingCheck": {"memory_gb": 6}},
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
    return load_config(settings)


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
    """The tasks it waits for: named, or producing one of its input artifacts or parameters."""
    inputs = task.get("inputs", {})
    producers = {
        spec["taskOutputArtifact"]["producerTask"] for spec in inputs.get("artifacts", {}).values()
    }
    producers |= {
        spec["taskOutputParameter"]["producerTask"]
        for spec in inputs.get("parameters", {}).values()
        if "taskOutputParameter" in spec
    }
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
    assert len(containers) == len(TASKS_AND_UPSTREAM)
    assert len(spec["deploymentSpec"]["executors"]) == len(TASKS_AND_UPSTREAM)
    for container in containers:
        assert container["image"] == IMAGE
        assert container["command"] == ENTRYPOINT


def beam_arguments(spec: dict, task: str, count: int) -> list[str]:
    """The Beam arguments TFX's compiler puts last in the task's container arguments."""
    return executor_of(spec, task)["container"]["args"][-count:]


def test_the_beam_steps_run_on_dataflow_with_the_project_s_image_and_no_tfx_package(spec):
    expected = [
        "--runner=DataflowRunner",
        "--project=example-project",
        "--region=europe-west4",
        "--temp_location=gs://example-bucket/dataflow",
        "--experiments=use_runner_v2",
        "--sdk_location=container",
        f"--sdk_container_image={IMAGE}",
        "--beam_plugins=imgclf",
    ]
    for task in BEAM_STEPS:
        assert beam_arguments(spec, task, len(expected)) == expected, task
        # TFX builds its 52 MB package for remote workers only without a dependency flag.
        assert dependency_utils.make_beam_dependency_flags(expected) == expected


PORTABLE = {"runner": "portable", "job_endpoint": "flink-jobserver:8099"}


@pytest.mark.parametrize(
    ("backend", "preset"),
    [("kfp", {}), ("kfp", PORTABLE), ("vertex", {}), ("vertex", DATAFLOW)],
    ids=["kfp-direct", "kfp-portable", "vertex-direct", "vertex-dataflow"],
)
def test_each_preset_and_each_task_s_resources_compile_for_both_backends(
    remote_data, tmp_path, backend, preset
):
    settings = {
        "kubeflow.backend": backend,
        "kubeflow.beam": preset,
        "kubeflow.trainer.gpu_type": {"kfp": "nvidia.com/gpu", "vertex": "NVIDIA_L4"}[backend],
        "kubeflow.beam_steps": {"cpu": 4, "memory_gb": 16},
        "kubeflow.tasks": {"Evaluator": {"memory_gb": 24}, "ServingCheck": {"memory_gb": 6}},
    }
    if backend == "vertex":
        settings |= {"kubeflow.project": "example-project", "kubeflow.region": "europe-west4"}
    config = cluster_config(**settings)
    spec = compile_pipeline(config, str(tmp_path / "pipeline.yaml"))
    arguments = config.kubeflow.beam.arguments()
    assert f"--sdk_container_image={IMAGE}" in arguments
    for task in BEAM_STEPS:
        assert beam_arguments(spec, task, len(arguments)) == arguments
    resources = {
        name: executor_of(spec, name)["container"].get("resources") for name in TASKS_AND_UPSTREAM
    }
    accelerator = settings["kubeflow.trainer.gpu_type"]
    assert resources.pop("Trainer") == {
        "accelerator": {"count": "4", "type": accelerator},
        "cpuLimit": 8.0,
        "memoryLimit": 32.0,
    }
    # ImportExampleGen's too, which TFX's compiler leaves out (tensorflow/tfx#6146).
    for name in ("ImportExampleGen", "ImageValidator", "StatisticsGen"):
        assert resources.pop(name) == {"cpuLimit": 4.0, "memoryLimit": 16.0}, name
    assert resources.pop("Evaluator") == {"memoryLimit": 24.0}
    assert resources.pop("ServingCheck") == {"memoryLimit": 6.0}
    assert set(resources.values()) == {None}


def test_epochs_learning_rates_data_root_and_span_are_run_time_parameters(spec):
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert declared == {
        "data_root": {"parameterType": "STRING", "defaultValue": DATA_ROOT, "isOptional": True},
        # The newest span, unless a run names one (a backfill).
        "span": {"parameterType": "NUMBER_INTEGER", "defaultValue": -1, "isOptional": True},
        "phase1_epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 6, "isOptional": True},
        "phase2_epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 4, "isOptional": True},
        "phase1_learning_rate": {
            "parameterType": "NUMBER_DOUBLE",
            "defaultValue": 0.002,
            "isOptional": True,
        },
        # Unset in the configuration: phase 1's, as the Trainer would use.
        "phase2_learning_rate": {
            "parameterType": "NUMBER_DOUBLE",
            "defaultValue": 0.002,
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
    resolver_inputs = tasks["SpanResolver"]["inputs"]["parameters"]
    assert resolver_inputs["input_base"] == {"componentInputParameter": "data_root"}
    assert resolver_inputs["backfill_span"] == {"componentInputParameter": "span"}


def test_the_span_resolver_runs_every_time_and_feeds_ingestion_its_cache_key(spec):
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["SpanResolver"]["cachingOptions"] == {"enableCache": False}
    example_gen_inputs = tasks["ImportExampleGen"]["inputs"]["parameters"]
    for key in ("input_config", "span", "spans", "input_fingerprint"):
        assert example_gen_inputs[key] == {
            "taskOutputParameter": {"outputParameterKey": key, "producerTask": "SpanResolver"}
        }
    # Open-source KFP never runs a preCacheCheck: TFX's driver is not in the spec.
    assert "lifecycle" not in executor_of(spec, "ImportExampleGen")["container"]


def test_every_artifact_type_imports_as_tfx_entrypoint_imports_it(spec):
    """TFX's container parser imports each type's title as a class path, or, for its own
    types and the consoles' (which the entrypoint adds), the path it maps the title to."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    from imgclf.components.console import CLASS_PATHS

    titles = set()
    for component in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for artifact in component.get(side, {}).get("artifacts", {}).values():
                titles.add(yaml.safe_load(artifact["artifactType"]["instanceSchema"])["title"])
    assert {"imgclf.ImageValidationReport", "imgclf.DataGateResult", "imgclf.ModelReport"} <= titles
    assert {"system.HTML", "system.Metrics", "system.ClassificationMetrics"} <= titles
    for title in titles:
        if title in compiler_utils.TITLE_TO_CLASS_PATH:  # TFX's own types
            assert import_utils.import_class_by_path(compiler_utils.TITLE_TO_CLASS_PATH[title])
        elif title in CLASS_PATHS:
            assert title == import_utils.import_class_by_path(CLASS_PATHS[title]).TYPE_NAME
        else:
            assert title == import_utils.import_class_by_path(title).TYPE_NAME


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


def test_the_dockerfile_installs_the_wheel_on_the_pinned_tfx_and_runs_the_entrypoint():
    dockerfile = (REPO / "kubeflow" / "Dockerfile").read_text()
    pinned = re.search(r"^tfx==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    bases = re.findall(r"^FROM tensorflow/tfx:(\S+)", dockerfile, re.M)
    assert bases == [pinned, pinned]
    assert "ENV TF_USE_LEGACY_KERAS=1" in dockerfile
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1)
    assert yaml.safe_load(entrypoint) == ENTRYPOINT
    # The wheel the tests install (tests/installing.py), built and installed the same way.
    assert "pip wheel --no-deps --no-build-isolation --wheel-dir /wheels ." in dockerfile
    assert "-c /tmp/constraints.txt /tmp/wheels/*.whl" in dockerfile
    # Nothing of a checkout's environment or outputs goes into the build context.
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "outputs", "data", ".git"} <= set(ignored)


def test_a_local_path_for_the_cluster_is_refused():
    with pytest.raises(ValueError, match=r"kubeflow.pipeline_root.*local path.*pods cannot read"):
        cluster_config(**{"kubeflow.pipeline_root": "/home/me/pipelines"})
    with pytest.raises(ValueError, match=r"kubeflow\.image, kubeflow\.data_root"):
        for_kubeflow(load_config({"kubeflow.pipeline_root": "gs://b/p", "data.root": "/data"}))


def test_the_output_must_be_yaml(tmp_path):
    with pytest.raises(ValueError, match=r"\*\.yaml"):
        compile_pipeline(cluster_config(), str(tmp_path / "pipeline.json"))


def test_the_example_cluster_configuration_is_complete(monkeypatch):
    monkeypatch.setenv("IMGCLF_CONFIG", str(REPO / "configs" / "cluster.example.yaml"))
    config = load_config()
    cluster = for_kubeflow(config)
    assert cluster.pipeline_root == "gs://my-bucket/pipelines"
    assert cluster.data.labels_path == "gs://my-bucket/flowers/labels.txt"
    assert cluster.serving_model_dir == "gs://my-bucket/serving/image_classifier"
    assert cluster.beam_arguments()[0] == "--runner=DataflowRunner"
    assert config.kubeflow.trainer.gpus == 4
    assert config.kubeflow.kserve.name == "flowers"


def test_a_scheduled_pipeline_on_spans_warm_starts_and_compares_spans(remote_data, tmp_path):
    spans = cluster_config(
        **{"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
    )
    path = tmp_path / "scheduled.yaml"
    compile_pipeline(scheduled(spans), str(path))
    tasks = yaml.safe_load(path.read_text())["root"]["dag"]["tasks"]

    # What the serving folder holds decides, on every backend: no resolver executors.
    def from_history(key):
        return {
            "taskOutputParameter": {"outputParameterKey": key, "producerTask": "ServingHistory"}
        }

    assert tasks["Trainer"]["inputs"]["parameters"]["warm_start_version"] == from_history(
        "warm_start_version"
    )
    assert tasks["Evaluator"]["inputs"]["parameters"]["baseline_version"] == from_history(
        "baseline_version"
    )
    assert tasks["DataGate"]["inputs"]["parameters"]["previous_version"] == from_history(
        "previous_version"
    )
    history_inputs = tasks["ServingHistory"]["inputs"]["parameters"]
    assert history_inputs["warm_start"] == {"runtimeValue": {"constant": 1.0}}
    assert tasks["ServingHistory"]["cachingOptions"] == {"enableCache": False}


def test_tfx_infra_validator_is_refused_on_kubeflow_with_the_reason(remote_data, tmp_path):
    with pytest.raises(ConfigError, match="compiler does not support InfraValidator"):
        compile_pipeline(
            cluster_config(**{"serving.check": "infra_validator"}), str(tmp_path / "infra.yaml")
        )


def test_with_no_serving_check_the_pusher_waits_for_the_evaluator_alone(remote_data, tmp_path):
    path = tmp_path / "unchecked.yaml"
    compile_pipeline(cluster_config(**{"serving.check": "none"}), str(path))
    tasks = yaml.safe_load(path.read_text())["root"]["dag"]["tasks"]
    assert "ServingCheck" not in tasks
    assert upstream_of(tasks["Pusher"]) == [
        "Evaluator",
        "ImageValidator",
        "StatisticsGen",
        "Trainer",
    ]


@pytest.mark.parametrize(
    ("backend", "gpu_type", "error"),
    [
        ("kfp", "NVIDIA_TESLA_T4", r"not a Kubernetes resource name \(a Vertex AI name"),
        ("vertex", "nvidia.com/gpu", "not a Vertex AI accelerator"),
        ("vertex", "NVIDIA_TESLA_T5", "not a Vertex AI accelerator"),
    ],
)
def test_each_backend_takes_its_own_accelerator_names(backend, gpu_type, error):
    with pytest.raises(ValueError, match=error):
        for_kubeflow(
            cluster_config(**{"kubeflow.backend": backend, "kubeflow.trainer.gpu_type": gpu_type})
        )


def test_a_rolling_window_runs_on_kubeflow_too():
    """The SpanResolver reads the window there (components/span_resolver.py)."""
    spans = {
        "data.train_pattern": "span-{SPAN}/train/*",
        "data.eval_pattern": "span-{SPAN}/eval/*",
        "data.rolling_spans": 2,
    }
    assert for_kubeflow(cluster_config(**spans)).data.rolling_spans == 2


def test_each_backend_has_a_default_accelerator(remote_data, tmp_path):
    overrides = {"kubeflow.trainer.gpu_type": None}
    assert cluster_config(**overrides).kubeflow.trainer.gpu_type == "nvidia.com/gpu"
    vertex = cluster_config(**overrides, **{"kubeflow.backend": "vertex"})
    assert vertex.kubeflow.trainer.gpu_type == "NVIDIA_TESLA_T4"
    assert for_kubeflow(
        cluster_config(**{"kubeflow.backend": "vertex", "kubeflow.trainer.gpu_type": "NVIDIA_L4"})
    )
    spec = compile_pipeline(vertex, str(tmp_path / "vertex.yaml"))
    accelerator = executor_of(spec, "Trainer")["container"]["resources"]["accelerator"]
    assert accelerator == {"count": "4", "type": "NVIDIA_TESLA_T4"}


def test_with_tuning_on_the_tuner_task_runs_on_the_trainer_s_pod_and_feeds_it(
    remote_data, tmp_path
):
    spec = compile_pipeline(
        cluster_config(**{"tuning.enabled": True}), str(tmp_path / "tuned.yaml")
    )
    tasks = spec["root"]["dag"]["tasks"]
    assert "DataGate" in tasks["Tuner"]["dependentTasks"]
    hyperparameters = tasks["Trainer"]["inputs"]["artifacts"]["hyperparameters"]
    assert hyperparameters["taskOutputArtifact"]["producerTask"] == "Tuner"
    trainer = executor_of(spec, "Trainer")["container"]["resources"]
    assert executor_of(spec, "Tuner")["container"]["resources"] == trainer


def test_on_vertex_a_registry_task_follows_the_pusher_with_its_settings(remote_data, tmp_path):
    config = cluster_config(
        **{
            "kubeflow.backend": "vertex",
            "kubeflow.project": "my-project",
            "kubeflow.region": "europe-west4",
            "kubeflow.trainer.gpu_type": "NVIDIA_L4",
            "kubeflow.registry.model": "shapes",
            "kubeflow.registry.endpoint": "shapes-endpoint",
            "kubeflow.registry.canary_percent": 10,
        }
    )
    spec = compile_pipeline(config, str(tmp_path / "vertex.yaml"))
    task = spec["root"]["dag"]["tasks"]["ModelRegistry"]
    assert upstream_of(task) == ["Pusher"]
    parameters = task["inputs"]["parameters"]
    registry = yaml.safe_load(parameters["registry"]["runtimeValue"]["constant"])
    assert (registry["model"], registry["endpoint"], registry["canary_percent"]) == (
        "shapes",
        "shapes-endpoint",
        10,
    )
    assert parameters["project"]["runtimeValue"]["constant"] == "my-project"
    # Without a registry model, no such task.
    assert (
        "ModelRegistry"
        not in compile_pipeline(cluster_config(), str(tmp_path / "kfp.yaml"))["root"]["dag"][
            "tasks"
        ]
    )


def test_the_registry_outside_vertex_or_an_endpoint_without_a_model_is_refused():
    with pytest.raises(ConfigError, match=r"registry\.model: Vertex AI Model Registry needs"):
        cluster_config(**{"kubeflow.registry.model": "shapes"})
    with pytest.raises(ConfigError, match=r"endpoint: set model too"):
        cluster_config(**{"kubeflow.registry.endpoint": "shapes-endpoint"})


def test_on_open_source_kfp_a_kserve_task_follows_the_pusher_with_its_settings(
    remote_data, tmp_path
):
    from tfx.utils import import_utils

    config = cluster_config(
        **{
            "kubeflow.namespace": "ml",
            "kubeflow.kserve.name": "shapes",
            "kubeflow.kserve.canary_percent": 10,
            "kubeflow.kserve.apply": True,
        }
    )
    spec = compile_pipeline(config, str(tmp_path / "kserve.yaml"))
    task = spec["root"]["dag"]["tasks"]["KServeRollout"]
    assert upstream_of(task) == ["Pusher"]
    parameters = task["inputs"]["parameters"]
    kserve = yaml.safe_load(parameters["kserve"]["runtimeValue"]["constant"])
    assert (kserve["name"], kserve["canary_percent"], kserve["apply"]) == ("shapes", 10, True)
    assert parameters["namespace"]["runtimeValue"]["constant"] == "ml"
    outputs = spec["components"]["KServeRollout"]["outputDefinitions"]["artifacts"]
    title = yaml.safe_load(outputs["manifest"]["artifactType"]["instanceSchema"])["title"]
    # As TFX's container imports it.
    assert import_utils.import_class_by_path(title).TYPE_NAME == title == "imgclf.KServeManifest"
    # The cluster's serving folder, which KServe reads.
    assert parameters["serving_model_dir"]["runtimeValue"]["constant"] == (
        "gs://example-bucket/pipelines/serving/image_classifier"
    )
    # Without a name, no such task.
    plain = compile_pipeline(cluster_config(), str(tmp_path / "plain.yaml"))
    assert "KServeRollout" not in plain["root"]["dag"]["tasks"]


def test_kserve_on_vertex_or_a_storage_kserve_cannot_read_is_refused():
    vertex = {
        "kubeflow.backend": "vertex",
        "kubeflow.project": "my-project",
        "kubeflow.region": "europe-west4",
        "kubeflow.trainer.gpu_type": "NVIDIA_L4",
    }
    with pytest.raises(ConfigError, match=r"kserve\.name: KServe serves on open-source"):
        cluster_config(**vertex, **{"kubeflow.kserve.name": "shapes"})
    with pytest.raises(ConfigError, match=r"KServe's storage initializer reads gs://"):
        cluster_config(**{"kubeflow.kserve.storage_uri": "abfs://models"})
