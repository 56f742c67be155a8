"""Compiles the pipeline for Kubeflow Pipelines 2.x: the same factory, the cluster's settings.

TFX's KubeflowV2DagRunner writes a bare PipelineSpec (schema 2.1.0) when
asked for YAML with `use_pipeline_spec_2_1`: the form the kfp 2 client uploads
and both backends (open-source KFP 2, Vertex AI Pipelines) accept. These things
are settled here, after TFX's compiler:

- That YAML has no runtimeConfig, so the pipeline root is given when a run is
  submitted, and the parameters' defaults (which TFX keeps only in
  runtimeConfig) are written into the spec.
- ExampleGen's `lifecycle.preCacheCheck` (TFX's driver) is dropped: open-source
  KFP never runs it, and the SpanResolver task does its work on both backends.
- The SpanResolver and ServingHistory run on every run (caching off): they read
  the data and the serving folder as they are.
- TFX names a dynamic parameter's producer `<node id>_task`, a task the spec
  does not have; it is named by its node id here.
- With kubeflow.trainer.workers > 1, the Trainer's container launches its
  workers (kubeflow/multi_worker.py) instead of training in its own pod.
- Every task asks for the resources the pipeline gave its node
  (pipeline/cluster.py): TFX's compiler drops them for a FileBasedExampleGen
  (tfx/orchestration/kubeflow/v2/step_builder.py, _build_file_based_example_gen_spec;
  tensorflow/tfx#6146), so ImportExampleGen's are put in here.

The spec is then checked to hold only container executors: open-source KFP
refuses any other kind (backend/src/v2/compiler/visitor.go).
"""

from __future__ import annotations

import os

import yaml
from google.protobuf import json_format
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

from imgclf.kubeflow import multi_worker
from imgclf.kubeflow.cluster import for_kubeflow
from imgclf.kubeflow.entrypoint import ENTRYPOINT
from imgclf.kubeflow.worker_job import JobSettings
from imgclf.pipeline.cluster import replica_limits, runtime_parameters
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.cluster import VERTEX
from imgclf.settings.config import PipelineConfig
from imgclf.settings.names import SERVING_HISTORY, SPAN_RESOLVER, TRAINER


def compile_pipeline(config: PipelineConfig, output_path: str) -> dict:
    """Writes the PipelineSpec YAML for `config.kubeflow`'s cluster; returns the spec."""
    if not output_path.endswith((".yaml", ".yml")):
        raise ValueError(f"{output_path}: the kfp client uploads .yaml files; name it *.yaml")
    cluster_config = for_kubeflow(config)
    runner = v2.KubeflowV2DagRunner(
        config=v2.KubeflowV2DagRunnerConfig(
            default_image=cluster_config.kubeflow.image,
            default_commands=ENTRYPOINT,
            use_pipeline_spec_2_1=True,
        ),
    )
    pipeline = create_pipeline(cluster_config, on_cluster=True)
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    declared = spec["root"]["inputDefinitions"]["parameters"]
    for name, parameter in runtime_parameters(cluster_config).items():
        declared[name]["defaultValue"] = parameter.default
        declared[name]["isOptional"] = True
    tasks = spec["root"]["dag"]["tasks"]
    for task in tasks.values():
        _name_producers_by_node_id(task, tasks)
    for always_run in (SPAN_RESOLVER, SERVING_HISTORY):
        tasks[always_run]["cachingOptions"] = {"enableCache": False}
    for executor in spec["deploymentSpec"]["executors"].values():
        executor.get("container", {}).pop("lifecycle", None)
    for node in pipeline.components:
        if node.platform_config:
            container = _container(spec, node.id)
            container["resources"] = json_format.MessageToDict(node.platform_config)
    if cluster_config.kubeflow.trainer.workers > 1:
        _launch_workers(spec, cluster_config)
    check_executors(spec)
    _write_atomically(spec, output_path)
    return spec


def _launch_workers(spec: dict, config: PipelineConfig) -> None:
    """The Trainer's container launches its workers' job (kubeflow/multi_worker.py)."""
    cluster = config.kubeflow
    trainer = cluster.trainer
    settings = JobSettings(
        backend=cluster.backend,
        image=cluster.image,
        workers=trainer.workers,
        start_deadline_seconds=trainer.start_deadline_seconds,
        job_deadline_hours=trainer.job_deadline_hours,
        namespace=cluster.namespace,
        limits=replica_limits(trainer),
        project=cluster.project,
        region=cluster.region,
        api_endpoint=cluster.api_endpoint,
        service_account=cluster.service_account,
        machine_type=trainer.machine_type,
        accelerator_type=trainer.gpu_type if trainer.gpus else "",
        accelerator_count=trainer.gpus,
        tensorboard=trainer.tensorboard,
    )
    component = _component(spec, TRAINER)
    container = _container(spec, TRAINER)
    container["command"] = multi_worker.COMMAND
    container["args"] += [multi_worker.JOB_ARG, settings.model_dump_json()]
    if cluster.backend == VERTEX:
        # Vertex AI Pipelines cancels the job this output names when the run is cancelled.
        parameters = component.setdefault("outputDefinitions", {}).setdefault("parameters", {})
        parameters[multi_worker.GCP_RESOURCES] = {"parameterType": "STRING"}


def _component(spec: dict, task: str) -> dict:
    return spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]


def _container(spec: dict, task: str) -> dict:
    label = _component(spec, task)["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]["container"]


def check_executors(spec: dict) -> None:
    """Open-source KFP runs container and importer executors only; this spec has containers."""
    for label, executor in spec["deploymentSpec"]["executors"].items():
        if set(executor) != {"container"}:
            raise ValueError(f"{label}: not a container executor ({sorted(executor)})")


def _name_producers_by_node_id(task: dict, tasks: dict) -> None:
    for parameter in task.get("inputs", {}).get("parameters", {}).values():
        output = parameter.get("taskOutputParameter")
        if output and output["producerTask"] not in tasks:
            output["producerTask"] = output["producerTask"].removesuffix("_task")


def _write_atomically(spec: dict, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w") as f:
        f.write(f"# PIPELINE DEFINITION\n# Name: {spec['pipelineInfo']['name']}\n")
        yaml.safe_dump(spec, f, sort_keys=True)
    os.replace(partial, path)
