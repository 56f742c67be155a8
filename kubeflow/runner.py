"""Compiles the pipeline for Kubeflow Pipelines 2.x: the same factory, the cluster's settings.

TFX's KubeflowV2DagRunner writes a bare PipelineSpec (schema 2.1.0) when
asked for YAML with `use_pipeline_spec_2_1`: the form the kfp 2 client uploads
and a KFP 2 backend accepts. That YAML has no runtimeConfig, so the pipeline
root is given when a run is submitted, and the parameters' defaults (which
TFX keeps only in runtimeConfig) are written into the spec here.
"""

from __future__ import annotations

import os

import yaml
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

from pipeline.cluster import runtime_parameters
from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline

# Every component's container runs this project's entrypoint (kubeflow/entrypoint.py).
ENTRYPOINT = ["python", "-m", "kubeflow.entrypoint"]


def compile_pipeline(config: PipelineConfig, output_path: str) -> dict:
    """Writes the PipelineSpec YAML for `config.kubeflow`'s cluster; returns the spec."""
    if not output_path.endswith((".yaml", ".yml")):
        raise ValueError(f"{output_path}: the kfp client uploads .yaml files; name it *.yaml")
    cluster_config = config.for_kubeflow()
    runner = v2.KubeflowV2DagRunner(
        config=v2.KubeflowV2DagRunnerConfig(
            default_image=cluster_config.kubeflow.image,
            default_commands=ENTRYPOINT,
            use_pipeline_spec_2_1=True,
        ),
    )
    job = runner.run(create_pipeline(cluster_config, on_cluster=True), write_out=False)
    spec = job["pipelineSpec"]
    declared = spec["root"]["inputDefinitions"]["parameters"]
    for name, parameter in runtime_parameters(cluster_config).items():
        declared[name]["defaultValue"] = parameter.default
        declared[name]["isOptional"] = True
    _write_atomically(spec, output_path)
    return spec


def _write_atomically(spec: dict, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w") as f:
        f.write(f"# PIPELINE DEFINITION\n# Name: {spec['pipelineInfo']['name']}\n")
        yaml.safe_dump(spec, f, sort_keys=True)
    os.replace(partial, path)
