"""The kubeflow section: where the pipeline runs on a cluster, and its Trainer's resources.

What only holds when compiling for a cluster is checked in kubeflow/cluster.py.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from imgclf.settings.base import (
    ArgumentList,
    Section,
    is_remote,
)
from imgclf.settings.beam import BeamConfig
from imgclf.settings.names import NODE_IDS, TRAINER, TUNER

# Kubeflow backends: open-source Kubeflow Pipelines 2 and Vertex AI Pipelines.
KFP, VERTEX = "kfp", "vertex"
# The direct preset's worker processes in a Beam step's pod, and the CPUs the pod asks for.
DIRECT_WORKERS = 2
# The accelerator each backend assumes when kubeflow.trainer.gpu_type is not set.
DEFAULT_GPU_TYPE = {KFP: "nvidia.com/gpu", VERTEX: "NVIDIA_TESLA_T4"}
# A Kubernetes extended resource name, as open-source KFP puts it in the pod's limits.
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[a-zA-Z0-9]([\w.-]*[a-zA-Z0-9])?$")


class TaskResources(Section):
    """What one task's pod asks of the cluster (its limits, which Kubernetes also takes as
    its requests); unset: the cluster's defaults."""

    cpu: float | None = Field(None, gt=0, description="vCPU limit; default: the cluster's.")
    memory_gb: float | None = Field(None, gt=0, description="Memory limit in GB.")


class BeamStepResources(TaskResources):
    """Each Beam step's pod (ImportExampleGen, ImageValidator, StatisticsGen, Evaluator):
    with the direct preset the data is processed there; with dataflow or portable the pod
    only submits the job and waits."""

    cpu: float | None = Field(DIRECT_WORKERS, gt=0, description="vCPU limit.")
    memory_gb: float | None = Field(8, gt=0, description="Memory limit in GB.")


class ClusterBeamConfig(BeamConfig):
    """The Beam steps' runner preset on Kubeflow."""

    direct_num_workers: int = Field(
        DIRECT_WORKERS,
        ge=0,
        description="direct: worker processes in each Beam step's pod (as many as its CPUs).",
    )


class TrainerResources(TaskResources):
    """What the Trainer asks of the cluster.

    With one worker, the Trainer task's pod asks for these resources. With
    more, the task launches a job of `workers` replicas, each asking for them
    (kubeflow/multi_worker.py), and the task's own pod needs none.
    """

    gpus: int = Field(0, ge=0, description="MirroredStrategy trains on every GPU of the pod.")
    gpu_type: str | None = Field(
        None,
        min_length=1,
        description="On open-source KFP the Kubernetes resource name (default nvidia.com/gpu); "
        "on Vertex AI an accelerator name (default NVIDIA_TESLA_T4; also NVIDIA_L4, ...).",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Machines that train together (MultiWorkerMirroredStrategy). Above 1, the "
        "Trainer task launches them: a TFJob of the Kubeflow Training Operator on open-source "
        "KFP (a Chief and workers-1 Workers, each with the resources above), a CustomJob on "
        "Vertex AI (pool 0 the chief, pool 1 the others, each a machine_type with the GPUs).",
    )
    machine_type: str = Field(
        "n1-standard-8",
        min_length=1,
        description="Vertex AI with workers > 1: each replica's machine type.",
    )
    start_deadline_seconds: float = Field(
        900,
        gt=0,
        description="With workers > 1: the Trainer task fails when the job's replicas are not "
        "all running by then (quota, image pull), with the cluster's reason.",
    )
    job_deadline_hours: float = Field(
        72, gt=0, description="With workers > 1: the job is stopped and the task fails after this."
    )
    tensorboard: str = Field(
        "",
        pattern=r"^(projects/[^/]+/locations/[^/]+/tensorboards/[^/]+)?$",
        description="Vertex AI with workers > 1: a Vertex AI TensorBoard instance, "
        "projects/<project>/locations/<region>/tensorboards/<id>. The job then gets "
        "AIP_TENSORBOARD_LOG_DIR, where the Trainer logs as well as in its model run.",
    )


class ModelRegistry(Section):
    """Vertex AI: each pushed version also in Vertex AI Model Registry, optionally served from
    an endpoint (modelstore/vertex_registry.py). The serving folder stays what runs build on."""

    model: str = Field(
        "",
        description="The Registry model whose versions the pushes become (its display name); "
        "empty: no registry.",
    )
    serving_image: str = Field(
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        min_length=1,
        description="The serving container of each version: Vertex AI's prebuilt TensorFlow "
        "image (the newest the pinned google-cloud-aiplatform lists), or a tf2-gpu one.",
    )
    endpoint: str = Field(
        "",
        description="An endpoint (display name; made if missing) each newly registered "
        "version is rolled out to; empty: registry only.",
    )
    canary_percent: int = Field(
        0,
        ge=0,
        le=99,
        description="0: the new version takes all traffic once it answers, then the earlier "
        "ones are undeployed; 1-99: its share, the version that served most keeps the rest.",
    )
    machine_type: str = Field("n1-standard-4", min_length=1, description="Each replica's.")
    min_replicas: int = Field(1, ge=1, description="Replicas per deployed version.")

    @model_validator(mode="after")
    def _endpoint_of_a_model(self) -> ModelRegistry:
        if self.endpoint and not self.model:
            raise ValueError("endpoint: set model too: an endpoint serves the Registry's versions")
        return self


# The storage URIs KServe's default storage initializer reads (kserve/kserve
# pkg/controller/v1beta1/inferenceservice/utils/utils.go, SupportedStorageURIPrefixList).
KSERVE_STORAGE_PREFIXES = ("gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


class KServe(Section):
    """Open-source KFP: the serving folder served by a KServe InferenceService (TF Serving),
    each pushed version rolled out as a new revision (modelstore/kserve.py)."""

    name: str = Field(
        "",
        description="The InferenceService's name, a DNS label (also TF Serving's model name, "
        "in /v1/models/<name>:predict); empty: no KServe.",
    )
    namespace: str = Field(
        "", description="Its namespace; empty: kubeflow.namespace, else the pipeline pod's own."
    )
    storage_uri: str = Field(
        "",
        description="Where KServe's storage initializer reads the serving folder (pvc://..., "
        "s3://...); empty: the serving folder's own URI.",
    )
    canary_percent: int = Field(
        0,
        ge=0,
        le=99,
        description="0: each new revision takes all traffic once ready; 1-99: its share, the "
        "last fully rolled-out revision keeps the rest (KServe's canaryTrafficPercent).",
    )
    apply: bool = Field(
        False,
        description="Apply the manifest from the pipeline with the Kubernetes API and wait for "
        "the new revision (the pipeline's service account may get, create and update "
        "inferenceservices); off: only write it, for your GitOps.",
    )
    service_account: str = Field(
        "", description="The predictor pods' service account: credentials for the storage."
    )
    min_replicas: int = Field(1, ge=0, description="0 lets KServe scale an idle model to zero.")
    ready_timeout_seconds: float = Field(
        600.0, gt=0, description="How long the new revision may take to become ready."
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if name and not _DNS_LABEL.match(name):
            raise ValueError(
                f"{name!r} is not a DNS label (lowercase letters, digits and '-', starting "
                "with a letter, at most 63 characters): KServe names its services after it"
            )
        return name

    @field_validator("storage_uri")
    @classmethod
    def _readable_by_kserve(cls, uri: str) -> str:
        if uri and not uri.startswith(KSERVE_STORAGE_PREFIXES):
            raise ValueError(
                f"{uri!r}: KServe's storage initializer reads {', '.join(KSERVE_STORAGE_PREFIXES)}"
            )
        return uri.rstrip("/")


def check_accelerator(backend: str, gpu_type: str) -> None:
    """Open-source KFP's driver puts the type into the pod's resource limits as it is
    (backend/src/v2/driver/driver.go, initPodSpecPatch): a Kubernetes resource name.
    Vertex AI's names (its AcceleratorType enum) are checked when the pipeline is
    compiled for it (kubeflow/cluster.py): this layer loads no Google client library."""
    if backend == KFP and not _RESOURCE_NAME.match(gpu_type):
        hint = " (a Vertex AI name: set kubeflow.backend: vertex)" if gpu_type.isupper() else ""
        raise ValueError(
            f"gpu_type {gpu_type!r} is not a Kubernetes resource name{hint}; open-source KFP "
            "puts it in the pod's limits, e.g. nvidia.com/gpu or amd.com/gpu"
        )


class KubeflowConfig(Section):
    """Where the pipeline runs on a Kubeflow Pipelines cluster: `imgclf kubeflow ...`.

    Every path must be one the pods can reach (gs://, s3://, ...): a local path
    exists only on the machine that compiles.
    """

    backend: Literal["kfp", "vertex"] = Field(
        KFP,
        description="'kfp': open-source Kubeflow Pipelines 2 (submits to host); 'vertex': "
        "Vertex AI Pipelines (submits to project and region).",
    )
    host: str = Field("", description="The KFP API endpoint, e.g. https://kfp.example.com.")
    project: str = Field("", description="Vertex AI: the Google Cloud project.")
    region: str = Field("", description="Vertex AI: the region, e.g. europe-west4.")
    service_account: str = Field("", description="Vertex AI: the runs' service account.")
    api_endpoint: str = Field(
        "", description="Vertex AI: the API endpoint, when not Google's regional one."
    )
    namespace: str = Field("", description="Kubernetes namespace (multi-user clusters).")
    experiment: str = Field("", description="Default: the pipeline's name.")
    image: str = Field("", description="The image built from kubeflow/Dockerfile, pushed.")
    pipeline_root: str = ""
    data_root: str = Field("", description="Default: data.root, when it is remote.")
    serving_root: str = Field("", description="Default: <pipeline_root>/serving.")
    beam: ClusterBeamConfig = Field(default_factory=ClusterBeamConfig)
    beam_pipeline_args: ArgumentList = Field(
        default_factory=list, description="Free-form, after the preset's and overriding them."
    )
    trainer: TrainerResources = Field(default_factory=TrainerResources)
    beam_steps: BeamStepResources = Field(default_factory=BeamStepResources)
    tasks: dict[str, TaskResources] = Field(
        default_factory=dict,
        description="Any other task's pod by its node id, e.g. {ServingCheck: {memory_gb: 8}}; "
        "over beam_steps for a Beam step. The Trainer's and Tuner's are kubeflow.trainer.",
    )
    registry: ModelRegistry = Field(default_factory=ModelRegistry)
    kserve: KServe = Field(default_factory=KServe)

    @field_validator("pipeline_root", "data_root", "serving_root")
    @classmethod
    def _reachable_from_pods(cls, path: str, info) -> str:
        if path and not is_remote(path):
            raise ValueError(
                f"{path!r} is a local path, which the cluster's pods cannot read; "
                f"give kubeflow.{info.field_name} as gs://, s3:// or another remote URI"
            )
        return path.rstrip("/")

    @model_validator(mode="after")
    def _workers_run_the_image(self) -> KubeflowConfig:
        # The pipeline's own image has the project installed: the workers run it too.
        if not self.beam.image:
            self.beam = self.beam.model_copy(update={"image": self.image})
        return self

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: dict[str, TaskResources]) -> dict[str, TaskResources]:
        for name in tasks:
            if name in (TRAINER, TUNER):
                raise ValueError(f"{name}: its pod asks for kubeflow.trainer's resources")
            if name not in NODE_IDS:
                raise ValueError(f"{name!r} is not a task of the pipeline; its tasks: {NODE_IDS}")
        return tasks

    @model_validator(mode="after")
    def _registry_on_vertex(self) -> KubeflowConfig:
        if self.registry.model and self.backend != VERTEX:
            raise ValueError(
                "registry.model: Vertex AI Model Registry needs kubeflow.backend vertex (on "
                "open-source KFP the serving folder is the model store)"
            )
        return self

    @model_validator(mode="after")
    def _kserve_on_open_source(self) -> KubeflowConfig:
        if self.kserve.name and self.backend != KFP:
            raise ValueError(
                "kserve.name: KServe serves on open-source clusters (kubeflow.backend kfp); on "
                "Vertex AI use kubeflow.registry with an endpoint"
            )
        return self

    @model_validator(mode="after")
    def _tensorboard_in_a_custom_job(self) -> KubeflowConfig:
        # Vertex AI sets AIP_TENSORBOARD_LOG_DIR in a CustomJob it was asked to connect to
        # a TensorBoard instance; the Trainer runs as one only with several workers.
        if self.trainer.tensorboard and (self.backend != VERTEX or self.trainer.workers < 2):
            raise ValueError(
                "trainer.tensorboard: Vertex AI logs to a TensorBoard instance from a CustomJob, "
                "which the Trainer runs as with kubeflow.backend vertex and "
                "kubeflow.trainer.workers of 2 or more"
            )
        return self

    @model_validator(mode="after")
    def _accelerator_of_backend(self) -> KubeflowConfig:
        if self.trainer.gpu_type is None:
            self.trainer.gpu_type = DEFAULT_GPU_TYPE[self.backend]
        try:
            check_accelerator(self.backend, self.trainer.gpu_type)
        except ValueError as error:
            raise ValueError(f"trainer.gpu_type: {error}") from None
        return self
