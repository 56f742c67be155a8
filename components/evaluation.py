"""What the Evaluator measures and the bar a new model must clear to be blessed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import tensorflow as tf
import tensorflow_model_analysis as tfma

from imgclf.settings.checks import EvaluationConfig
from imgclf.settings.data import DataConfig
from imgclf.trainer.export import SERVING_DEFAULT
from imgclf.trainer.model import OUTPUT_NAME

ACCURACY = "sparse_categorical_accuracy"
EXAMPLE_COUNT = "example_count"
TOP_K_ACCURACY = "top_k_accuracy"
PRECISION = "precision"
RECALL = "recall"
# The name TFX's Evaluator gives the last blessed model when it compares against it.
BASELINE = "baseline"


def make_eval_config(
    evaluation: EvaluationConfig, data: DataConfig, num_classes: int
) -> tfma.EvalConfig:
    """What TFMA measures, overall and per true label, and the bar for blessing.

    Accuracy must reach `min_accuracy`, and must not fall below the last
    blessed model's by more than `min_improvement` allows. On the first run
    there is no blessed model: TFMA then checks only the absolute bound. Each
    class's recall (its images' accuracy, top-1) must reach `min_class_recall`,
    so a model that never finds a class is not blessed however accurate it is
    overall. Precision and recall per class (binarized at probability 0.5) are
    measured, not judged.
    """
    overall = tfma.SlicingSpec()
    by_label = tfma.SlicingSpec(feature_keys=[data.label_key])
    recall_bar = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": evaluation.min_class_recall}
        )
    )
    accuracy_bar = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": evaluation.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": evaluation.min_improvement},
        ),
    )
    metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(
            class_name="SparseCategoricalAccuracy",
            per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[overall], threshold=accuracy_bar),
                # Accuracy on one class's images is that class's (top-1) recall.
                tfma.PerSliceMetricThreshold(slicing_specs=[by_label], threshold=recall_bar),
            ],
        ),
        tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
    ]
    top_k = evaluation.top_k_for(num_classes)
    if top_k:
        metrics.append(
            tfma.MetricConfig(
                class_name="SparseTopKCategoricalAccuracy",
                config=json.dumps({"k": top_k, "name": TOP_K_ACCURACY}),
            )
        )
    per_class = tfma.MetricsSpec(
        metrics=[tfma.MetricConfig(class_name="Precision"), tfma.MetricConfig(class_name="Recall")],
        binarize=tfma.BinarizationOptions(class_ids={"values": list(range(num_classes))}),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_DEFAULT,
                label_key=data.label_key,
                prediction_key=OUTPUT_NAME,
            )
        ],
        slicing_specs=[overall, by_label],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics), per_class],
    )


@dataclass
class ModelMetrics:
    """One model's overall metrics, its per-class precision and recall, and accuracy by label."""

    overall: dict[str, float] = field(default_factory=dict)
    precision: dict[int, float] = field(default_factory=dict)
    recall: dict[int, float] = field(default_factory=dict)
    accuracy_by_label: dict[int, float] = field(default_factory=dict)


CANDIDATE = "candidate"


# TFMA's readers call tf_record_iterator, which TensorFlow then logs as deprecated, with
# instructions for updating: a note to TFMA's developers, on our users' screens.
DEPRECATION_NOTE = "is deprecated and will be removed"


@contextmanager
def _without_deprecation_notes() -> Iterator[None]:
    def not_a_deprecation_note(record: logging.LogRecord) -> bool:
        return DEPRECATION_NOTE not in record.getMessage()

    tf.get_logger().addFilter(not_a_deprecation_note)
    try:
        yield
    finally:
        tf.get_logger().removeFilter(not_a_deprecation_note)


def read_metrics(evaluation_uri: str, label_key: str) -> dict[str, ModelMetrics]:
    """Per model ("candidate", and "baseline" when there was one), what TFMA measured."""
    models: dict[str, ModelMetrics] = {}
    with _without_deprecation_notes():
        slices = list(tfma.load_metrics(evaluation_uri))
    for per_slice in slices:
        slice_keys = per_slice.slice_key.single_slice_keys
        by_label = [key for key in slice_keys if key.column == label_key]
        for item in per_slice.metric_keys_and_values:
            key = item.key
            if key.is_diff or not item.value.HasField("double_value"):
                continue
            model = BASELINE if key.model_name == BASELINE else CANDIDATE
            metrics = models.setdefault(model, ModelMetrics())
            value = item.value.double_value.value
            if by_label:
                if key.name == ACCURACY:
                    metrics.accuracy_by_label[int(by_label[0].int64_value)] = value
            elif slice_keys:
                continue
            elif key.sub_key.HasField("class_id"):
                per_class = {PRECISION: metrics.precision, RECALL: metrics.recall}.get(key.name)
                if per_class is not None:
                    per_class[key.sub_key.class_id.value] = value
            else:
                metrics.overall[key.name] = value
    return models


def read_confusion_matrix(evaluation_uri: str, num_classes: int) -> list[list[int]]:
    """Overall counts of [true label][predicted label] for the candidate model."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    with _without_deprecation_notes():
        slices = list(tfma.load_plots(evaluation_uri))
    for per_slice in slices:
        if per_slice.slice_key.single_slice_keys:
            continue
        for item in per_slice.plot_keys_and_values:
            if item.key.model_name == BASELINE:
                continue
            plot = item.value.multi_class_confusion_matrix_at_thresholds
            for entry in plot.matrices[0].entries if plot.matrices else []:
                count = int(entry.num_weighted_examples)
                matrix[entry.actual_class_id][entry.predicted_class_id] = count
    return matrix


def balanced_accuracy(metrics: ModelMetrics) -> float | None:
    """The mean of the classes' (top-1) recalls: accuracy as if every class were as common."""
    recalls = metrics.accuracy_by_label
    return sum(recalls.values()) / len(recalls) if recalls else None


def describe_failure(
    failure, class_names: list[str] | None = None, label: int | None = None
) -> str:
    """One failed TFMA threshold as a sentence; `label`: the true label's slice it failed on."""
    name, value = failure.metric_key.name, failure.metric_value.double_value.value
    if label is not None:
        known = class_names and 0 <= label < len(class_names)
        name = f"recall of class {class_names[label]!r}" if known else f"recall of class {label}"
    threshold = failure.metric_threshold
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("lower_bound"):
            return f"{name} {value:.3f} is below the minimum {bounds.lower_bound.value:.3f}"
        return f"{name} {value:.3f} is above the maximum {bounds.upper_bound.value:.3f}"
    change = threshold.change_threshold
    direction = "more" if change.direction == tfma.MetricDirection.HIGHER_IS_BETTER else "less"
    return (
        f"{name} changed by {value:+.3f} against the last blessed model; "
        f"the required change is {change.absolute.value:+.3f} or {direction}"
    )


def _label_of(slice_key) -> int | None:
    """The true label a slice holds, or None for the overall slice."""
    keys = slice_key.single_slice_keys
    return int(keys[0].int64_value) if keys else None


def read_failures(
    evaluation_uri: str, class_names: list[str] | None = None
) -> tuple[bool, list[str]]:
    """(blessed by the thresholds, every failed threshold as a sentence, classes by name)."""
    with _without_deprecation_notes():
        validation = tfma.load_validation_result(evaluation_uri)
    failures = [
        describe_failure(failure, class_names, _label_of(per_slice.slice_key))
        for per_slice in validation.metric_validations_per_slice
        for failure in per_slice.failures
    ]
    return validation.validation_ok, failures
