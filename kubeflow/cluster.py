"""The configuration as a cluster's pods see it: what only holds on Kubeflow.

Every Kubeflow command (compile, run, schedule) starts from `for_kubeflow`, so
what a cluster needs is checked before anything is compiled or sent: the
paths the pods read (remote ones), the image, a serving check TFX's compiler
supports, and, for Vertex AI, an accelerator of its own naming.
"""

from __future__ import annotations

from imgclf.settings.base import ConfigError, is_remote
from imgclf.settings.cluster import VERTEX
from imgclf.settings.config import PipelineConfig


def for_kubeflow(config: PipelineConfig) -> PipelineConfig:
    """`config` with the cluster's paths and Beam arguments in place of local ones."""
    cluster = config.kubeflow
    missing = [name for name in ("image", "pipeline_root") if not getattr(cluster, name)]
    data_root = cluster.data_root or (config.data.root if is_remote(config.data.root) else "")
    if not data_root:
        missing.append("data_root")
    if config.serving.check == "infra_validator":
        # tfx/orchestration/kubeflow/v2/step_builder.py raises NotImplementedError for it.
        raise ConfigError(
            "serving.check: TFX's Kubeflow Pipelines 2 compiler does not support "
            "InfraValidator (TFX 1.16); on Kubeflow use 'local' (the check runs in its own "
            "task's container) or 'none'."
        )
    if missing:
        settings = ", ".join(f"kubeflow.{name}" for name in missing)
        why = f" (data.root {config.data.root!r} is local)" if "data_root" in missing else ""
        raise ConfigError(
            f"To run on Kubeflow, set {settings}{why}: in the YAML file's kubeflow "
            "section or as IMGCLF_KUBEFLOW__<NAME>."
        )
    if cluster.backend == VERTEX:
        check_vertex_accelerator(cluster.trainer.gpu_type)
    return config.model_copy(
        update={
            "pipeline_root": cluster.pipeline_root,
            "serving_root": cluster.serving_root or f"{cluster.pipeline_root}/serving",
            "beam": cluster.beam,
            "beam_pipeline_args": cluster.beam_pipeline_args,
            "data": config.data.model_copy(update={"root": data_root}),
            # A pod's GPUs are the replicas; splitting its CPU would only slow it.
            "training": config.training.model_copy(update={"cpu_replicas": 1}),
        }
    )


def check_vertex_accelerator(gpu_type: str) -> None:
    """Vertex AI takes the names of its AcceleratorType enum (google-cloud-aiplatform)."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    known = [name for name in AcceleratorType.__members__ if name != "ACCELERATOR_TYPE_UNSPECIFIED"]
    if gpu_type not in known:
        raise ConfigError(
            f"kubeflow.trainer.gpu_type: {gpu_type!r} is not a Vertex AI accelerator; "
            f"choose from {known}"
        )
