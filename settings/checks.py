"""What a run must pass: data validation, evaluation, and the serving check before a push."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from imgclf.settings.base import (
    Section,
)


class ValidationConfig(Section):
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
    max_split_overlap: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of an eval split's images that may also be in the train split (the "
        "same pixels) before the run fails: its accuracy would count images training saw.",
    )
    max_conflicting_labels: int = Field(
        0,
        ge=0,
        description="Images that may carry different labels (the same pixels in two classes) "
        "before the run fails.",
    )
    fail_on_warnings: bool = Field(
        False,
        description="Fail on imbalance, a class missing from eval, label drift, or an image "
        "repeated within a split.",
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


class EvaluationConfig(Section):
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


class ServingConfig(Section):
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
