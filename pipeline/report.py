"""A short account of the latest run: how good the model is, and where it went."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import tensorflow as tf
from tfx.utils import path_utils

from imgclf.components.console import page_copy
from imgclf.components.data_gate import anomaly_findings, load_anomalies
from imgclf.components.duplicates import eval_images_in_train, held_out
from imgclf.components.evaluation import (
    ACCURACY,
    BASELINE,
    CANDIDATE,
    EXAMPLE_COUNT,
    read_failures,
    read_metrics,
)
from imgclf.components.image_validator import REPORT_TEXT, read_report
from imgclf.components.serving_check import RESULT_JSON, describe, read_result
from imgclf.pipeline.lock import holder
from imgclf.pipeline.runs import UNFINISHED, PipelineRun, latest_run
from imgclf.settings import names
from imgclf.settings.config import PipelineConfig
from imgclf.settings.names import LABEL_KEY
from imgclf.trainer.confidence import transfer_worth, with_interval
from imgclf.trainer.export import SCRATCH, read_summary
from imgclf.trainer.schedule import FINE_TUNING, kept_accuracy

# A validation accuracy's 95% interval wider than this: too few images to choose epochs by
# (100 images at 0.95 give 0.888 to 0.978).
FEW_IMAGES_WIDTH = 0.1


@dataclass
class RunOutcome:
    run_id: str
    accuracy: float | None = None
    baseline_accuracy: float | None = None
    example_count: int | None = None
    eval_images_in_train: int | None = None  # the same pixels in both (the ImageValidator's)
    blessed: bool | None = None
    failures: list[str] = field(default_factory=list)
    pushed_to: str | None = None
    already_served: int | None = None  # blessed, but that version already is this model
    not_pushed_because: str | None = None  # blessed, but the Pusher refused it: why
    training: dict | None = None
    data_rejected: str | None = None  # the image validation report, when the gate failed
    report_dir: str | None = None  # the ModelReport: comparison and most wrong predictions
    model_page: str | None = None  # the ModelReport's web page
    data_page: str | None = None  # the DataReport's web page
    serving_check: dict | None = None  # the ServingCheck's figures and verdict
    recall_by_class: dict[str, float] = field(default_factory=dict)  # on the test split
    unfinished: dict[str, str] = field(default_factory=dict)  # node id -> its state
    stopped_by: str | None = None  # "stopped by SIGTERM": a signal stopped the run
    in_progress_by: str | None = None  # the lock's holder, while a run is in progress

    def describe(self, min_accuracy: float) -> str:
        lines = [f"Run {self.run_id}", *self._unfinished_lines()]
        if self.data_rejected:
            lines.append("  The data failed validation: nothing was trained or pushed.")
            lines += [f"  {line}" for line in self.data_rejected.splitlines()]
            return "\n".join(lines + self._page_lines())
        if self.training:
            lines += describe_training(self.training)
        if self.accuracy is None:
            lines.append("  The model was not evaluated (the run stopped before the Evaluator).")
            return "\n".join(lines)
        images = self.example_count or 0
        lines.append(
            f"  Test accuracy {with_interval(self.accuracy, images)} on "
            f"{held_out(self.example_count, self.eval_images_in_train)} "
            f"(must be >= {min_accuracy:.3f})"
        )
        if self.recall_by_class:
            recalls = ", ".join(
                f"{name} {value:.2f}" for name, value in self.recall_by_class.items()
            )
            balanced = sum(self.recall_by_class.values()) / len(self.recall_by_class)
            lines.append(f"  Recall by class: {recalls}; balanced accuracy {balanced:.3f}")
        if self.baseline_accuracy is None:
            lines.append("  No served model of these classes: only the absolute bound applied.")
        else:
            baseline = with_interval(self.baseline_accuracy, images)
            lines.append(f"  Last blessed model: accuracy {baseline} on the same images")
        lines.append(f"  Blessed: {'yes' if self.blessed else 'no'}")
        lines += [f"    {failure}" for failure in self.failures]
        if self.serving_check:
            lines.append(f"  Serving check: {describe(self.serving_check)}")
        if self.pushed_to:
            lines.append(f"  Pushed to: {self.pushed_to}")
        elif names.PUSHER in self.unfinished:
            lines.append("  Not pushed: the Pusher did not finish.")
        elif self.blessed and self.serving_check and not self.serving_check["passed"]:
            lines.append("  Not pushed: it failed the serving check.")
        elif self.already_served is not None:
            lines.append(f"  Not pushed: version {self.already_served} already is this model.")
        elif self.not_pushed_because:
            lines.append(
                f"  Not pushed: {self.not_pushed_because}; evaluation.allow_class_change would "
                "push it under the same model name."
            )
        else:
            lines.append("  Not pushed.")
        if self.report_dir:
            lines.append(f"  Comparison and most confident mistakes: {self.report_dir}")
        return "\n".join(lines + self._page_lines())

    def _page_lines(self) -> list[str]:
        pages = (("Model report", self.model_page), ("Data report", self.data_page))
        return [f"  {title} (a web page): {path}" for title, path in pages if path]

    def _unfinished_lines(self) -> list[str]:
        def listed(*states: str) -> str:
            return ", ".join(node for node, state in self.unfinished.items() if state in states)

        lines = []
        if listed("RUNNING") and self.in_progress_by:
            lines.append(f"  Still running ({self.in_progress_by}): {listed('RUNNING')}.")
        elif self.stopped_by:
            where = (
                f"while {listed('CANCELED')} ran" if listed("CANCELED") else "between components"
            )
            lines.append(f"  STOPPED {self.stopped_by.removeprefix('stopped ')} {where}.")
        elif listed("RUNNING", "CANCELED"):
            lines.append(
                f"  KILLED: {listed('RUNNING', 'CANCELED')} never finished (the run's process "
                "died); nothing after it ran."
            )
        failed = [
            node
            for node in self.unfinished
            if self.unfinished[node] == "FAILED"
            and not (node == names.DATA_GATE and self.data_rejected)
        ]
        if failed:
            lines.append(f"  FAILED: {', '.join(failed)} (its error is in the run's log).")
        return lines


def describe_training(summary: dict) -> list[str]:
    lines = [
        f"  Trained {summary['base_model']} with {summary['strategy']} over "
        f"{summary['num_replicas']} replica(s), global batch {summary['global_batch_size']}:"
    ]
    roles = summary.get("roles")
    if roles:
        lines += [
            f"    train: {summary['train_examples']} images, {roles['train']}",
            f"    validation (best epochs, early stopping): {summary['validation_examples']} "
            f"images, {roles['validation']}",
            f"    test: {roles['test']}",
        ]
    for phase in summary["phases"]:
        lines.append(f"    {phase['name']}: {_phase_line(phase)}")
    validation = summary.get("validation")  # recorded since issue 30
    if validation:
        lines += _validation_lines(validation)
    scratch = summary.get("scratch")
    if scratch:
        worth = transfer_worth(
            kept_accuracy(summary["phases"]),
            scratch,
            summary["validation_examples"],
            scratch_exported=summary["exported"] == SCRATCH,
        )
        lines.append(f"  What transfer is worth: {worth}")
    return lines


def _validation_lines(validation: dict) -> list[str]:
    images = validation["images"]
    low, high = validation["interval_95"]
    lines = [
        f"    kept weights: validation accuracy "
        f"{with_interval(validation['accuracy'], images)} on {images} images"
    ]
    if high - low > FEW_IMAGES_WIDTH:
        lines.append(
            f"    {images} validation images cannot tell apart accuracies from {low:.2f} to "
            f"{high:.2f}: the best epoch and early stopping follow them"
        )
    return lines


def _phase_line(phase: dict) -> str:
    epochs, most = phase["epochs"], phase.get("max_epochs")
    line = f"epochs {epochs[0]}-{epochs[-1]}"
    if most and len(epochs) < most:
        line += f" (stopped early: {len(epochs)} of at most {most})"
    line += f" at learning rate {phase['learning_rate']:.2g}"
    cache = phase.get("feature_cache_seconds")
    if cache is not None:
        line += f" on features cached in {cache:.1f} s"
    if "images_per_second" in phase:
        line += f", {phase['images_per_second']:.0f} images/s"
    if phase.get("best_epoch") is not None:
        return line + f", best epoch {phase['best_epoch']}"
    if phase["name"] == FINE_TUNING:
        return line + "; no epoch beat feature extraction, whose best weights were kept"
    return line


def timing_lines(runs: list[PipelineRun]) -> list[str]:
    """Each component's wall time in the last run, the Trainer's share, and earlier runs' totals."""
    latest = runs[-1]
    total = latest.seconds
    lines = [f"Run {latest.run_id}"]
    for node in sorted(latest.nodes.values(), key=lambda node: -node.seconds):
        lines.append(f"  {node.node_id:32} {node.seconds:8.1f} s  {node.state}")
    lines.append(f"  {'sum of components':32} {total:8.1f} s")
    trainer = latest.nodes.get(names.TRAINER)
    if trainer is not None and trainer.state == "COMPLETE" and total:
        lines.append(f"  the Trainer's share: {trainer.seconds / total:.1%}")
    if len(runs) > 1:
        first = runs[0]
        lines.append(f"The last {len(runs)} runs, oldest first (sum of components):")
        for run in runs:
            states = [node.state for node in run.nodes.values()]
            share = f"{run.seconds / first.seconds:7.1%} of the first" if first.seconds else ""
            lines.append(
                f"  {run.run_id:28} {run.seconds:8.1f} s {share}; "
                f"{states.count('COMPLETE')} executed, {states.count('CACHED')} cached"
            )
    return lines


def outcome_of(run: PipelineRun, label_key: str = LABEL_KEY) -> RunOutcome:
    outcome = RunOutcome(run.run_id)
    outcome.unfinished = {
        node.node_id: node.state for node in run.nodes.values() if node.state in UNFINISHED
    }
    outcome.stopped_by = run.stopped
    gate = run.nodes.get(names.DATA_GATE)
    if gate is not None and gate.state == "FAILED":
        outcome.data_rejected = _rejection(run)
    trainer = run.nodes.get(names.TRAINER)
    model = trainer.output("model") if trainer else None
    if model is not None:
        outcome.training = read_summary(path_utils.serving_model_dir(model.uri))
    evaluator = run.nodes.get(names.EVALUATOR)
    evaluation = evaluator.output("evaluation") if evaluator else None
    if evaluation is not None:
        models = read_metrics(evaluation.uri, label_key)
        candidate, baseline = models[CANDIDATE], models.get(BASELINE)
        outcome.accuracy = candidate.overall[ACCURACY]
        outcome.example_count = int(candidate.overall[EXAMPLE_COUNT])
        outcome.eval_images_in_train = eval_images_in_train(
            read_report(run.nodes[names.IMAGE_VALIDATOR].output("report").uri)
        )
        outcome.baseline_accuracy = baseline.overall[ACCURACY] if baseline else None
        class_names = (outcome.training or {}).get("class_names")
        outcome.blessed, outcome.failures = read_failures(evaluation.uri, class_names)
        if class_names:
            outcome.recall_by_class = {
                class_names[label]: value
                for label, value in sorted(candidate.accuracy_by_label.items())
            }
    model_report = run.nodes.get(names.MODEL_REPORT)
    comparison = model_report.output("report") if model_report else None
    if comparison is not None:
        outcome.report_dir = comparison.uri
    outcome.model_page = page_of(run, names.MODEL_REPORT)
    outcome.data_page = page_of(run, names.DATA_REPORT)
    check = run.nodes.get(names.SERVING_CHECK)
    blessing = check.output("blessing") if check else None
    # TFX's InfraValidator, when it stands in, writes no figures.
    if blessing is not None and tf.io.gfile.exists(os.path.join(blessing.uri, RESULT_JSON)):
        outcome.serving_check = read_result(blessing.uri)
    pusher = run.nodes.get(names.PUSHER)
    pushed = pusher.output("pushed_model") if pusher else None
    if pushed is not None and pushed.properties.get(names.PUSHED_PROPERTY):
        outcome.pushed_to = str(pushed.properties[names.PUSHED_DESTINATION_PROPERTY])
    elif pushed is not None and names.PUSHED_VERSION_PROPERTY in pushed.properties:
        outcome.already_served = int(pushed.properties[names.PUSHED_VERSION_PROPERTY])
    elif pushed is not None and names.NOT_PUSHED_PROPERTY in pushed.properties:
        outcome.not_pushed_because = str(pushed.properties[names.NOT_PUSHED_PROPERTY])
    return outcome


def page_of(run: PipelineRun, node_id: str) -> str | None:
    """The web page a node of the run wrote (DataReport, ModelReport), as a browser opens it."""
    node = run.nodes.get(node_id)
    page = node.output("page") if node else None
    return page_copy(page.uri) if page is not None else None


def _rejection(run: PipelineRun) -> str:
    """Why the gate stopped the run: schema anomalies, then the image validation report."""
    anomalies = run.nodes[names.EXAMPLE_VALIDATOR].output("anomalies")
    found = load_anomalies(anomalies.uri, json.loads(anomalies.properties["split_names"]))
    problems, _ = anomaly_findings(found)
    lines = [f"Schema anomaly: {problem}" for problem in problems]
    path = os.path.join(run.nodes[names.IMAGE_VALIDATOR].output("report").uri, REPORT_TEXT)
    with tf.io.gfile.GFile(path) as f:
        lines += f.read().splitlines()
    return "\n".join([*lines, f"(report: {path})"])


def latest_outcome(config: PipelineConfig) -> RunOutcome | None:
    run = latest_run(config.metadata_path, config.pipeline_name)
    if run is None:
        return None
    outcome = outcome_of(run, config.data.label_key)
    outcome.in_progress_by = holder(config)
    return outcome
