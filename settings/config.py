"""The one configuration of the pipeline, validated when it is built.

Values come, lowest priority first, from the defaults below, a YAML file named
by `IMGCLF_CONFIG`, environment variables and explicit overrides; pydantic-settings
reads and merges the sources:

    IMGCLF_PIPELINE_NAME=flowers                  a top-level setting
    IMGCLF_TRAINING__PHASE1_EPOCHS=3              a setting of a section
    IMGCLF_BEAM_PIPELINE_ARGS="--runner=DirectRunner --direct_num_workers=2"

Environment variables reach every process the TFX CLI starts, which is why
they are the way to override settings without editing code.
"""

from __future__ import annotations

import os
import re
import shlex
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from imgclf.settings.architectures import ARCHITECTURES
from imgclf.settings.names import (
    IMAGE_KEY,
    LABEL_KEY,
    LABELS_FILENAME,
    PUSH_RECORDS_DIR,
    SCHEMA_FILENAME,
    SPAN_COMPLETE_MARKER,
    SPAN_SPEC,
)

ENV_PREFIX = "IMGCLF_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "IMGCLF_CONFIG"
# The IMGCLF_* variables the command line's `--set` wrote (comma-separated), so that a
# message about one of them names the flag the user typed, not a variable they never set.
SET_ON_COMMAND_LINE_ENV = "IMGCLF_SET_ON_COMMAND_LINE"
# Files that ship inside the package (configs/, linked into imgclf like the layers), so
# an installed wheel has them too: `imgclf demo`'s settings and the bases they name.
BUNDLED_CONFIGS = Path(__file__).parent.parent / "configs"
DEMO_CONFIG = BUNDLED_CONFIGS / "demo.yaml"
# `model.weights: bundled:<file>` names a base in BUNDLED_CONFIGS/backbones.
BUNDLED_WEIGHTS_PREFIX = "bundled:"


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid; the message names it and its source."""


def is_remote(path: str) -> bool:
    return "://" in path


def _absolute(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def _bundled_weights(name: str) -> str:
    backbones = BUNDLED_CONFIGS / "backbones"
    path = backbones / name
    if name != path.name or not path.is_file():
        shipped = sorted(file.name for file in backbones.glob("*.h5"))
        raise ValueError(
            f"no base {name!r} is bundled with imgclf; bundled: {', '.join(shipped) or 'none'}"
        )
    return str(path)


def _empty_means_none(model: type[BaseModel], values: Any) -> Any:
    """An empty environment variable (`--set data.span=`) unsets an optional setting."""
    if isinstance(values, dict):
        for name, field in model.model_fields.items():
            if values.get(name) == "" and type(None) in typing.get_args(field.annotation):
                values[name] = None
    return values


def _shell_words(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


# Lists of arguments are written shell-style in the environment: "--runner=X --region=Y".
ArgumentList = Annotated[list[str], NoDecode, BeforeValidator(_shell_words)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _unset_empty(cls, values: Any) -> Any:
        return _empty_means_none(cls, values)


def span_folder_pattern(pattern: str) -> str | None:
    """The pattern's folders up to the one named with {SPAN} ('span-{SPAN}'), or None when
    {SPAN} is only in a file name."""
    parts = pattern.split("/")
    named = [index for index, part in enumerate(parts[:-1]) if SPAN_SPEC in part]
    return "/".join(parts[: named[0] + 1]) if named else None


class DataConfig(_Section):
    """Where the labelled images are and how their records are laid out."""

    root: str = "data/sample"
    train_pattern: str = "train/*"
    eval_pattern: str = Field(
        "eval/*", description="The test split: the Evaluator's, never seen in training."
    )
    validation_pattern: str | None = Field(
        None,
        description="A validation split of its own (checkpoints, early stopping); "
        "default: carved out of train (training.validation_fraction).",
    )
    labels_file: str = Field(
        LABELS_FILENAME, description="Class names in label order; relative to root unless a path."
    )
    image_key: str = IMAGE_KEY
    label_key: str = LABEL_KEY
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="The largest image (width x height) read anywhere: conversion, validation, "
        "training and the serving signature check the header and refuse a larger image before "
        "decoding it. 50 million takes a 48-megapixel phone photo (150 MB decoded).",
    )
    schema_file: str = Field(
        SCHEMA_FILENAME, description="The curated schema (imgclf make-schema); relative to root."
    )
    span: int | None = Field(
        None, ge=0, description="Ingest this span (a backfill) instead of the newest one."
    )
    rolling_spans: int = Field(
        1, ge=1, description="Train and evaluate on the newest N spans, up to `span` if set."
    )
    span_complete_marker: str = Field(
        SPAN_COMPLETE_MARKER,
        description="A span is taken only once its folder (the one the patterns name with "
        "{SPAN}) holds this file, which its writer puts there last; imgclf's writers do. "
        "Empty: every span that matches the patterns is taken.",
    )

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, root: str) -> str:
        return _absolute(root)

    @model_validator(mode="after")
    def _spans_in_patterns(self) -> DataConfig:
        patterns = [self.train_pattern, self.eval_pattern, self.validation_pattern]
        marked = [SPAN_SPEC in pattern for pattern in patterns if pattern is not None]
        if any(marked) and not all(marked):
            given = ", ".join(repr(pattern) for pattern in patterns if pattern is not None)
            raise ValueError(
                f"train_pattern, eval_pattern and validation_pattern must all hold {SPAN_SPEC} "
                f"or none (got {given})"
            )
        if (
            self.has_spans
            and self.span_complete_marker
            and not span_folder_pattern(self.train_pattern)
        ):
            raise ValueError(
                f"span_complete_marker: {SPAN_SPEC} must name a folder of the patterns (e.g. "
                f"'span-{SPAN_SPEC}/train/*'), where the marker is looked for; or set it to '' "
                "to take spans without a marker"
            )
        if not self.has_spans and (self.span is not None or self.rolling_spans > 1):
            raise ValueError(
                f"span and rolling_spans need {SPAN_SPEC} in the patterns, "
                f"e.g. 'span-{SPAN_SPEC}/train/*'"
            )
        return self

    @property
    def has_spans(self) -> bool:
        return SPAN_SPEC in self.train_pattern

    @property
    def labels_path(self) -> str:
        return self._under_root(self.labels_file)

    @property
    def schema_path(self) -> str:
        return self._under_root(self.schema_file)

    def _under_root(self, path: str) -> str:
        if is_remote(path) or os.path.isabs(path):
            return path
        return os.path.join(self.root, path)


class ModelConfig(_Section):
    """The network: a pretrained base and a small classification head."""

    base_model: str = "EfficientNetV2B0"
    weights: str = Field(
        "imagenet",
        description="'imagenet', 'none', a weights file path (local or gs://...), or "
        f"'{BUNDLED_WEIGHTS_PREFIX}<file>' for a base shipped in imgclf's configs/backbones/.",
    )
    image_size: int = Field(224, ge=32, le=1024)
    alpha: float = Field(1.0, gt=0.0, description="Width multiplier; MobileNetV2 only.")
    feature_layer: str = Field(
        "",
        description="Take features from this layer of the base (e.g. InceptionV3 'mixed7'), "
        "flattened, instead of pooling its top.",
    )
    head_units: int = Field(0, ge=0, description="Units of a hidden dense layer; 0 for none.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    binary: bool = Field(False, description="One sigmoid unit instead of softmax (2 classes).")

    @field_validator("base_model")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown base model {name!r}; choose from {sorted(ARCHITECTURES)}")
        return name

    @field_validator("weights")
    @classmethod
    def _weights_file_absolute(cls, weights: str) -> str:
        if weights in ("imagenet", "none"):
            return weights
        if weights.startswith(BUNDLED_WEIGHTS_PREFIX):
            return _bundled_weights(weights.removeprefix(BUNDLED_WEIGHTS_PREFIX))
        return _absolute(weights)

    @model_validator(mode="after")
    def _fits_base(self) -> ModelConfig:
        architecture = ARCHITECTURES[self.base_model]
        if self.image_size < architecture.min_image_size:
            raise ValueError(f"{self.base_model} needs image_size >= {architecture.min_image_size}")
        if self.alpha != 1.0 and not architecture.has_width_multiplier:
            raise ValueError(f"alpha (width multiplier) is not a setting of {self.base_model}")
        return self


class TrainingConfig(_Section):
    """The two-phase schedule: feature extraction, then fine-tuning."""

    batch_size: int = Field(32, ge=1, description="Per replica; global = this x replicas.")
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    phase1_epochs: int = Field(5, ge=1)
    phase1_learning_rate: float = Field(1e-3, gt=0.0)
    # Epochs are maxima (early_stopping_patience): fine-tuning gets room to adapt the whole
    # base to data unlike its source task, and ends soon after its best epoch on data like it.
    phase2_epochs: int = Field(30, ge=0, description="0 switches fine-tuning off.")
    phase2_learning_rate: float | None = Field(
        None,
        gt=0.0,
        description="The peak of fine-tuning's schedule. Default: phase1_learning_rate.",
    )
    phase2_schedule: Literal["cosine", "constant"] = Field(
        "cosine",
        description="Fine-tuning's learning rate: 'cosine' warms up linearly to "
        "phase2_learning_rate, then decays it along a cosine to 0 at phase2_epochs.",
    )
    warmup_epochs: int = Field(1, ge=0, description="Fine-tuning's warm-up, with 'cosine'.")
    early_stopping_patience: int = Field(
        5,
        ge=0,
        description="End a phase after this many epochs without a better validation accuracy "
        "(its best epoch is kept either way); 0 trains every epoch. Epochs are maxima.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the train split held out for validation, chosen by a stable hash "
        "of each image, when the data has no validation split (data.validation_pattern).",
    )
    class_weight: Literal["balanced", "none"] = Field(
        "none",
        description="'balanced' weighs each class's loss by total / (classes x its train count).",
    )
    fine_tune_layers: int | Literal["all"] = Field(
        "all", description="Top layers of the base to unfreeze, or 'all'."
    )
    fine_tune_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="Unfreeze this fraction of the base's layers instead."
    )
    compare_scratch: bool = Field(
        False,
        description="Also train the same network from random weights for as many epochs as "
        "the transfer model trained, and report both best validation accuracies: what transfer "
        "is worth.",
    )
    fine_tune_batch_norm: bool = Field(
        True,
        description="Fine-tuning also trains the unfrozen BatchNormalization layers, statistics "
        "included (for data far from the base's source task); off, they stay as pretrained.",
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="Default: the train split's size / global batch, rounded up."
    )
    mixed_precision: bool = Field(False, description="mixed_float16 on GPUs; ignored on CPU.")
    cpu_replicas: int = Field(
        1, ge=1, description="With no GPU, split the CPU into this many MirroredStrategy replicas."
    )
    shuffle_buffer: int = Field(1024, ge=1)
    random_flip: bool = True
    random_rotation: float = Field(0.05, ge=0.0, le=0.5, description="Fraction of a full turn.")
    random_zoom: float = Field(0.1, ge=0.0, lt=1.0)
    random_contrast: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 42
    cache_features: bool | None = Field(
        None,
        description="Train phase 1's head on features the frozen base computes once. "
        "Default: on when augmentation is off.",
    )
    cached_views: int = Field(
        1, ge=1, description="With augmentation on and cache_features: views of each image cached."
    )
    feature_cache_memory_mb: int = Field(
        1024, ge=0, description="A split's cached features beyond this go to TFRecord files."
    )
    warm_start: bool | None = Field(
        None,
        description="Start from the latest blessed model of an earlier span, when it has the "
        "same classes. Default: on for scheduled runs (imgclf retrain, Kubeflow recurring runs).",
    )

    @property
    def augments(self) -> bool:
        return bool(
            self.random_flip or self.random_rotation or self.random_zoom or self.random_contrast
        )

    @property
    def uses_feature_cache(self) -> bool:
        return self.cache_features if self.cache_features is not None else not self.augments

    @property
    def fine_tune_learning_rate(self) -> float:
        return self.phase2_learning_rate or self.phase1_learning_rate

    @field_validator("fine_tune_layers")
    @classmethod
    def _some_layers(cls, layers: int | str) -> int | str:
        if layers != "all" and layers < 1:
            raise ValueError("unfreeze at least 1 layer, or 'all'")
        return layers

    def layers_to_unfreeze(self, base_layers: int) -> int:
        if self.fine_tune_fraction is not None:
            return max(1, round(self.fine_tune_fraction * base_layers))
        return base_layers if self.fine_tune_layers == "all" else self.fine_tune_layers


# What the Tuner searches, by the section of the setting each value overrides.
TUNED_SETTINGS = {
    "training": ("phase1_learning_rate", "phase2_learning_rate", "fine_tune_fraction"),
    "model": ("dropout",),
}


class TuningConfig(_Section):
    """An optional search before training: TFX's Tuner with KerasTuner (trainer/tuning.py).

    Each trial is a whole two-phase run, judged on the validation records;
    the Trainer then trains with the best values and records them.
    """

    enabled: bool = False
    max_trials: int = Field(6, ge=1, description="Random search: this many settings tried.")
    phase1_learning_rates: list[float] = Field(default_factory=lambda: [1e-3, 3e-3])
    phase2_learning_rates: list[float] = Field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    fine_tune_fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    dropouts: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.4])

    @field_validator("phase1_learning_rates", "phase2_learning_rates", "fine_tune_fractions")
    @classmethod
    def _positive_choices(cls, values: list[float], info) -> list[float]:
        if not values or any(value <= 0 for value in values):
            raise ValueError(f"{info.field_name}: give at least one value, each above 0")
        if info.field_name == "fine_tune_fractions" and any(value > 1 for value in values):
            raise ValueError("fine_tune_fractions are shares of the base's layers: at most 1")
        return values

    @field_validator("dropouts")
    @classmethod
    def _dropout_choices(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 <= value < 1 for value in values):
            raise ValueError("give at least one dropout, each in [0, 1)")
        return values


class ValidationConfig(_Section):
    """When the data is too bad to train on: the run then stops before the Trainer.

    A bad record (no image, an image that does not decode or is too small, no
    label, a label that is not an integer in range) is left out of training
    and evaluation and listed in the report; too many of them fail the run.
    """

    max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0, description="Per split.")
    min_images_per_class: int = Field(5, ge=0, description="In the train split.")
    min_image_size: int = Field(8, ge=1, description="Smallest height or width, in pixels.")
    max_class_imbalance: float = Field(
        10.0, ge=1.0, description="Largest/smallest class count in a split before a warning."
    )
    max_label_drift: float = Field(
        0.2, gt=0.0, le=1.0, description="L-infinity distance of train vs eval label shares."
    )
    fail_on_warnings: bool = Field(
        False, description="Fail on imbalance, a class missing from eval, or label drift."
    )
    max_span_label_drift: float = Field(
        0.2,
        gt=0.0,
        le=1.0,
        description="L-infinity distance of this span's train label shares from the previous "
        "span's.",
    )
    max_span_image_change: float = Field(
        0.5,
        gt=0.0,
        description="Relative change of the smallest or largest image side, or L-infinity "
        "change of the image format and channel shares, from the previous span.",
    )
    fail_on_span_drift: bool = Field(
        False, description="Fail the run when the new span drifted beyond these bounds."
    )


class EvaluationConfig(_Section):
    """What a new model must reach before it is blessed and pushed."""

    allow_empty_serving_folder: bool = Field(
        False,
        description="Run although pushes to the serving folder are recorded (in <pipeline_root>/"
        "pushes) and it holds no version now (deleted, or a share mounted empty): serving starts "
        "anew from version 1. Off, the run trains nothing, and says so.",
    )
    allow_class_change: bool = Field(
        False,
        description="Push a model whose classes (names, order or number) differ from the newest "
        "served version's under the same model name. Off, it is not pushed and the report says "
        "what differs: every client would read its answers with the old class names.",
    )
    min_accuracy: float = Field(0.5, ge=0.0, le=1.0)
    min_class_recall: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Every class's recall must reach this: a class the model never finds "
        "fails it, whatever the overall accuracy. 0 switches it off.",
    )
    min_improvement: float = Field(
        0.0, description="Accuracy gain over the last blessed model; negative tolerates a drop."
    )
    top_k: int | None = Field(
        None,
        ge=2,
        description="k of top-k accuracy; default 5, used when below the class count.",
    )
    most_wrong: int = Field(
        16, ge=0, description="How many confident mistakes the model report shows."
    )

    def top_k_for(self, num_classes: int) -> int | None:
        """The k of top-k accuracy; None when it says nothing (k covers every class)."""
        k = self.top_k if self.top_k is not None else 5
        return k if k < num_classes else None


class ServingConfig(_Section):
    """What each model carries to serving, and the check it passes before it is pushed."""

    warmup_images: int = Field(
        8,
        ge=0,
        le=1000,
        description="Validation images in the warmup requests each model ships "
        "(assets.extra/tf_serving_warmup_requests); 0 for none.",
    )
    tflite: bool = Field(
        False, description="Also export tflite/model.tflite with tflite/labels.txt in each version."
    )
    check: Literal["local", "infra_validator", "none"] = Field(
        "local",
        description="Before a push: 'local' loads the model in a separate process and sends it "
        "the warmup requests; 'infra_validator' runs TFX's InfraValidator with the TF Serving "
        "image in the local Docker (runs here only); 'none' pushes unchecked.",
    )
    check_timeout_seconds: float = Field(
        300.0, gt=0, description="The local check fails a model not loaded and answering by then."
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="The local check fails a model whose slowest request took longer."
    )
    serving_image: str = Field(
        "tensorflow/serving", description="infra_validator: the TF Serving image, without tag."
    )
    serving_image_tag: str = Field("2.16.1", description="infra_validator: the image's tag.")


# Kubeflow backends: open-source Kubeflow Pipelines 2 and Vertex AI Pipelines.
KFP, VERTEX = "kfp", "vertex"
# The accelerator each backend assumes when kubeflow.trainer.gpu_type is not set.
DEFAULT_GPU_TYPE = {KFP: "nvidia.com/gpu", VERTEX: "NVIDIA_TESLA_T4"}
# A Kubernetes extended resource name, as open-source KFP puts it in the pod's limits.
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[a-zA-Z0-9]([\w.-]*[a-zA-Z0-9])?$")


class TrainerResources(_Section):
    """What the Trainer asks of the cluster; every other component runs with the defaults.

    With one worker, the Trainer task's pod asks for these resources. With
    more, the task launches a job of `workers` replicas, each asking for them
    (kubeflow/multi_worker.py), and the task's own pod needs none.
    """

    cpu: float | None = Field(None, gt=0, description="vCPU limit; default: the cluster's.")
    memory_gb: float | None = Field(None, gt=0, description="Memory limit in GB.")
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


class KubeflowConfig(_Section):
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
    beam_pipeline_args: ArgumentList = Field(
        default_factory=lambda: ["--runner=DirectRunner", "--direct_num_workers=0"],
        description="e.g. --runner=DataflowRunner --project=... --region=... "
        "--temp_location=gs://... --setup_file=./setup.py",
    )
    trainer: TrainerResources = Field(default_factory=TrainerResources)

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
    def _accelerator_of_backend(self) -> KubeflowConfig:
        if self.trainer.gpu_type is None:
            self.trainer.gpu_type = DEFAULT_GPU_TYPE[self.backend]
        try:
            check_accelerator(self.backend, self.trainer.gpu_type)
        except ValueError as error:
            raise ValueError(f"trainer.gpu_type: {error}") from None
        return self


class TrainerConfig(_Section):
    """The part of the configuration the Trainer module receives as custom_config."""

    data: DataConfig
    model: ModelConfig
    training: TrainingConfig
    serving: ServingConfig
    tuning: TuningConfig = Field(default_factory=TuningConfig)

    def tuned(self, values: Mapping[str, Any]) -> TrainerConfig:
        """This configuration with a search's values in place (trainer/tuning.py), validated."""
        settings = self.model_dump(mode="json")
        for section, names in TUNED_SETTINGS.items():
            settings[section].update({name: values[name] for name in names if name in values})
        return TrainerConfig.model_validate(settings)


class PipelineConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    pipeline_name: str = Field("image-classifier", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model_name: str = Field("image_classifier", pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: str = Field("outputs", description="Default home of every path below.")
    pipeline_root: str = Field("", description="Default: <output_dir>/pipelines/<name>.")
    metadata_path: str = Field("", description="Default: <output_dir>/metadata/<name>.db.")
    serving_root: str = Field("", description="Default: <output_dir>/serving.")
    tfx_home: str = Field("", description="The TFX CLI's BEAM_HOME. Default: <output_dir>/tfx.")
    beam_pipeline_args: ArgumentList = Field(
        default_factory=list,
        description="None: Beam's in-memory DirectRunner in the run's own process. Arguments "
        "without a dependency flag (--extra_packages, --setup_file, --sdk_container_image) "
        "make TFX build a 52 MB copy of itself per Beam component, for remote workers "
        "(tfx/utils/dependency_utils.py); a local run removes them at its end.",
    )
    enable_cache: bool = True
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    kubeflow: KubeflowConfig = Field(default_factory=KubeflowConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: overrides, the environment, the file $IMGCLF_CONFIG names."""
        config_file = os.environ.get(CONFIG_FILE_ENV)
        sources = [init_settings, env_settings]
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _unset_empty(cls, values: Any) -> Any:
        return _empty_means_none(cls, values)

    @model_validator(mode="after")
    def _derive_paths(self) -> PipelineConfig:
        self.output_dir = _absolute(self.output_dir)
        derived = {
            "pipeline_root": os.path.join(self.output_dir, "pipelines", self.pipeline_name),
            "metadata_path": os.path.join(self.output_dir, "metadata", f"{self.pipeline_name}.db"),
            "serving_root": os.path.join(self.output_dir, "serving"),
            "tfx_home": os.path.join(self.output_dir, "tfx"),
        }
        for name, default in derived.items():
            setattr(self, name, _absolute(getattr(self, name) or default))
        return self

    @model_validator(mode="after")
    def _warm_start_needs_spans(self) -> PipelineConfig:
        if self.training.warm_start and not self.data.has_spans:
            raise ValueError(
                "training.warm_start continues from the blessed model of an earlier span: "
                f"give data.train_pattern and data.eval_pattern a {SPAN_SPEC}"
            )
        return self

    @property
    def serving_model_dir(self) -> str:
        """Where versions are pushed: TF Serving's `--model_base_path`."""
        return os.path.join(self.serving_root, self.model_name)

    @property
    def push_records_dir(self) -> str:
        """Where each push is recorded, outside the serving folder (modelstore/)."""
        return os.path.join(self.pipeline_root, PUSH_RECORDS_DIR)

    def trainer_config(self) -> TrainerConfig:
        return TrainerConfig(
            data=self.data,
            model=self.model,
            training=self.training,
            serving=self.serving,
            tuning=self.tuning,
        )


def load_config(overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Builds the configuration from defaults, file, environment and `overrides`.

    `overrides` maps dotted names to values, e.g. {"training.phase1_epochs": 2}.
    """
    overrides = dict(overrides or {})
    _refuse_unknown_environment(os.environ)
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        _check_config_file(config_file)
    values: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    try:
        return PipelineConfig(**values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "configuration"
            source = _source_of(where, overrides, config_file)
            problems.append(f"  {where}: {item['msg']}" + (f" (from {source})" if source else ""))
        raise ConfigError("Invalid configuration:\n" + "\n".join(problems)) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark):
        super().__init__(
            f"{key!r} is given twice in one mapping (lines {first.line + 1} and "
            f"{again.line + 1}); YAML readers would keep the second silently"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not the last wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _check_config_file(path: str) -> None:
    """What pydantic-settings' YAML source would misread: a missing file, a file that is not
    YAML or not a mapping of settings, a key given twice."""
    where = f"Configuration file {path!r} (${CONFIG_FILE_ENV})"
    try:
        with open(path) as f:
            content = yaml.load(f, Loader=_UniqueKeyLoader)
    except OSError as error:
        raise ConfigError(f"Cannot read {where}: {error.strerror}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid settings YAML: {error}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(
            f"{where} holds a YAML {type(content).__name__}; settings are a mapping of names to "
            "values, e.g. 'pipeline_name: flowers' and 'training:' with 'phase1_epochs: 3' "
            "indented under it."
        )


def parse_assignment(assignment: str) -> tuple[str, str]:
    """'training.phase1_epochs=3' -> ('training.phase1_epochs', '3'), for command-line flags."""
    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise ConfigError(f"Expected NAME=VALUE (training.phase1_epochs=3), got {assignment!r}.")
    return name.strip(), value


def to_env(dotted: str, value: str) -> tuple[str, str]:
    """('training.phase1_epochs', '3') -> ('IMGCLF_TRAINING__PHASE1_EPOCHS', '3')."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(p.upper() for p in dotted.split(".")), value


def _refuse_unknown_environment(environ: Mapping[str, str]) -> None:
    """An IMGCLF_* variable that names no setting is a typo: pydantic-settings would ignore it."""
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in (
            CONFIG_FILE_ENV,
            SET_ON_COMMAND_LINE_ENV,
        ):
            continue
        *sections, name = variable[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
        model: type[BaseModel] = PipelineConfig
        for section in sections:
            field = model.model_fields.get(section)
            annotation = field.annotation if field else None
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ConfigError(f"${variable}: {section!r} is not a configuration section.")
            model = annotation
        if name not in model.model_fields:
            dotted = ".".join([*sections, name])
            raise ConfigError(
                f"${variable}: unknown setting {dotted!r}; known: {sorted(model.model_fields)}."
            )


def _source_of(dotted: str, overrides: Mapping[str, Any], config_file: str | None) -> str:
    """Where a setting's value came from, highest priority first, for error messages."""
    if dotted in overrides:
        return f"override {dotted}"
    variable = to_env(dotted, "")[0]
    if variable in os.environ.get(SET_ON_COMMAND_LINE_ENV, "").split(","):
        return f"--set {dotted}"
    if variable in os.environ:
        return f"${variable}"
    return config_file or ""
