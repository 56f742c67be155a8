"""What changes when the pipeline runs on a cluster: run-time parameters and the tasks' pods.

On Kubeflow, a compiled pipeline is run many times; these settings can change
per run without recompiling. Each is a pipeline parameter whose default is the
configuration's value; the Trainer receives the training ones as execution
properties that override its configuration (components/trainer.py).
"""

from __future__ import annotations

from typing import Any

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent

from imgclf.settings.cluster import KubeflowConfig, TaskResources, TrainerResources
from imgclf.settings.config import PipelineConfig
from imgclf.settings.names import (
    DATA_ROOT_PARAMETER,
    NEWEST_SPAN,
    PARAMETER_TYPES,
    SPAN_PARAMETER,
    TRAINER,
    TUNER,
)

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def runtime_parameters(config: PipelineConfig) -> dict[str, tfx.dsl.experimental.RuntimeParameter]:
    """The pipeline's parameters, named as in the compiled spec, defaulting to `config`."""
    defaults: dict[str, Any] = {
        DATA_ROOT_PARAMETER: config.data.root,
        SPAN_PARAMETER: NEWEST_SPAN if config.data.span is None else config.data.span,
        "phase1_epochs": config.training.phase1_epochs,
        "phase2_epochs": config.training.phase2_epochs,
        "phase1_learning_rate": config.training.phase1_learning_rate,
        "phase2_learning_rate": config.training.fine_tune_learning_rate,
    }
    return {
        name: tfx.dsl.experimental.RuntimeParameter(
            name=name, ptype=PARAMETER_TYPES[name], default=value
        )
        for name, value in defaults.items()
    }


def replica_limits(resources: TrainerResources) -> dict[str, str]:
    """Each worker's pod limits in a multi-worker job, as Kubernetes quantities."""
    limits = {}
    if resources.cpu:
        limits["cpu"] = f"{resources.cpu:g}"
    if resources.memory_gb:
        limits["memory"] = f"{resources.memory_gb:g}G"
    if resources.gpus:
        limits[resources.gpu_type] = str(resources.gpus)
    return limits


def task_resources(resources: TaskResources) -> ResourceSpec:
    """A task pod's limits; with GPUs (the Trainer's), MirroredStrategy uses all of them.

    Open-source KFP's driver turns them into the pod's limits (backend/src/v2/driver/
    driver.go, initPodSpecPatch: cpu_limit in cores, memory_limit in G); Vertex AI
    Pipelines picks a machine that has them.
    """
    spec = ResourceSpec()
    if resources.cpu:
        spec.cpu_limit = resources.cpu
    if resources.memory_gb:
        spec.memory_limit = resources.memory_gb
    if isinstance(resources, TrainerResources) and resources.gpus:
        spec.accelerator.type = resources.gpu_type
        spec.accelerator.count = resources.gpus
    return spec


def ask_for_resources(components: list, cluster: KubeflowConfig) -> None:
    """Each task's pod limits: the Trainer's, which the Tuner's trials share (they train
    as it does); each Beam step's; any task's that kubeflow.tasks names."""
    for node in components:
        if node.id == TRAINER and cluster.trainer.workers > 1:
            continue  # its pod only launches the workers' job, which asks for them
        if node.id in (TUNER, TRAINER):
            resources = cluster.trainer
        elif isinstance(node, BaseBeamComponent):
            resources = cluster.tasks.get(node.id, cluster.beam_steps)
        else:
            resources = cluster.tasks.get(node.id)
        if resources is not None and (spec := task_resources(resources)).ByteSize():
            node.with_platform_config(spec)
