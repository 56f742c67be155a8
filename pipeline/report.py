"""A short account of the latest run: how good the model is, and where it went."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from pipeline.evaluation import ACCURACY
from pipeline.runs import PipelineRun, latest_run
from trainer.export import read_summary

EXAMPLE_COUNT = "example_count"
# Where TFX's Trainer puts the serving model inside its Model artifact.
SERVING_MODEL_DIR = "Format-Serving"


@dataclass
class RunOutcome:
    run_id: str
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    example_count: int | None = None
    blessed: bool | None = None
    failures: list[str] = field(default_factory=list)
    pushed_to: str | None = None
    training: dict | None = None

    def describe(self, min_accuracy: float) -> str:
        lines = [f"Run {self.run_id}"]
        if self.training:
            lines += describe_training(self.training)
        if self.accuracy is None:
            lines.append("  The model was not evaluated (the run stopped before the Evaluator).")
            return "\n".join(lines)
        lines.append(
            f"  Accuracy {self.accuracy:.3f} on {self.example_count} eval images "
            f"(must be >= {min_accuracy:.3f})"
        )
        if self.baseline_accuracy is None:
            lines.append("  No blessed model before this one: only the absolute bound applied.")
        else:
            lines.append(f"  Last blessed model: accuracy {self.baseline_accuracy:.3f}")
        lines.append(f"  Blessed: {'yes' if self.blessed else 'no'}")
        lines += [f"    {failure}" for failure in self.failures]
        lines.append(f"  Pushed to: {self.pushed_to}" if self.pushed_to else "  Not pushed.")
        return "\n".join(lines)


def describe_training(summary: dict) -> list[str]:
    lines = [
        f"  Trained {summary['base_model']} with {summary['strategy']} over "
        f"{summary['num_replicas']} replica(s), global batch {summary['global_batch_size']}:"
    ]
    for phase in summary["phases"]:
        best = f", best epoch {phase['best_epoch']}" if phase.get("best_epoch") is not None else ""
        speed = (
            f", {phase['images_per_second']:.0f} images/s" if "images_per_second" in phase else ""
        )
        lines.append(
            f"    {phase['name']}: epochs {phase['epochs'][0]}-{phase['epochs'][-1]} at learning "
            f"rate {phase['learning_rate']:.2g}{speed}{best}"
        )
    return lines


def outcome_of(run: PipelineRun) -> RunOutcome:
    outcome = RunOutcome(run.run_id)
    trainer = run.nodes.get("Trainer")
    model = trainer.output("model") if trainer else None
    if model is not None:
        outcome.training = read_summary(os.path.join(model.uri, SERVING_MODEL_DIR))
    evaluator = run.nodes.get("Evaluator")
    evaluation = evaluator.output("evaluation") if evaluator else None
    if evaluation is not None:
        _read_metrics(evaluation.uri, outcome)
        validation = tfma.load_validation_result(evaluation.uri)
        outcome.blessed = validation.validation_ok
        outcome.failures = [
            describe_failure(failure)
            for per_slice in validation.metric_validations_per_slice
            for failure in per_slice.failures
        ]
    pusher = run.nodes.get("Pusher")
    pushed = pusher.output("pushed_model") if pusher else None
    if pushed is not None and pushed.properties.get("pushed"):
        outcome.pushed_to = str(pushed.properties["pushed_destination"])
    return outcome


def describe_failure(failure) -> str:
    """One failed TFMA threshold as a sentence, e.g. why a model was not blessed."""
    name, value = failure.metric_key.name, failure.metric_value.double_value.value
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


def latest_outcome(config: PipelineConfig) -> RunOutcome | None:
    run = latest_run(config.metadata_path, config.pipeline_name)
    return outcome_of(run) if run else None


def _read_metrics(evaluation_uri: str, outcome: RunOutcome) -> None:
    """Overall-slice accuracy of the candidate, and of the baseline when there was one."""
    for metrics in tfma.load_metrics(evaluation_uri):
        if metrics.slice_key.single_slice_keys:
            continue
        for item in metrics.metric_keys_and_values:
            key, value = item.key, item.value.double_value.value
            if key.is_diff:
                continue
            is_baseline = key.model_name == "baseline"
            if key.name == ACCURACY:
                if is_baseline:
                    outcome.baseline_accuracy = value
                else:
                    outcome.accuracy = value
            elif key.name == EXAMPLE_COUNT and not is_baseline:
                outcome.example_count = int(value)
