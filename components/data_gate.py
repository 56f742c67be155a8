"""DataGate: stops the run before training when the data is bad, saying why.

It fails (and with it the run, on any orchestrator: the Trainer depends on
it) when ExampleValidator found anomalies against the curated schema or the
ImageValidator's policy failed. Features the schema does not know are allowed
and only noted. It also measures, with TFDV's L-infinity comparator, how far
the eval split's label distribution is from the train split's: beyond
`max_label_drift` that is a warning, or a failure with `fail_on_warnings`.

The judgement is `assess`, which the DataReport (components/data_report.py)
shows on its page before this component acts on it.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import anomalies_util
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import types
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from imgclf.components.drift import SpanDrift, label_drift, span_drift
from imgclf.components.image_validator import REPORT_TEXT, ImageValidationReport, read_report
from imgclf.components.inspection import Verdict
from imgclf.components.key_figure import record_key_figure
from imgclf.modelstore.serving_folder import (
    IMAGE_REPORT_DIR,
    STATISTICS_DIR,
    STATISTICS_FILE,
    TRAIN_STATISTICS,
    read_provenance,
)
from imgclf.settings.names import DATA_GATE, NO_VERSION, PASSED_PROPERTY

ANOMALIES_FILE = "SchemaDiff.pb"
RESULT_JSON = "gate.json"
RESULT_TEXT = "gate.txt"
# TFDV's reason for a feature the schema does not list: extra features are allowed.
NEW_COLUMN = anomalies_pb2.AnomalyInfo.SCHEMA_NEW_COLUMN


class DataValidationError(RuntimeError):
    """The data failed validation; the message lists every problem."""


class DataGateResult(types.Artifact):
    """gate.json and gate.txt: the problems, warnings and notes; custom property `passed`."""

    TYPE_NAME = "imgclf.DataGateResult"


def anomaly_findings(anomalies: dict[str, anomalies_pb2.Anomalies]) -> tuple[list, list]:
    """(problems, notes): schema anomalies per split, new features only noted."""
    problems, notes = [], []
    for split, found in anomalies.items():
        for feature, info in sorted(found.anomaly_info.items()):
            reasons = {reason.type for reason in info.reason}
            message = f"{split}: feature '{feature}': {info.description}"
            (notes if reasons == {NEW_COLUMN} else problems).append(message)
        if found.HasField("dataset_anomaly_info"):
            problems.append(f"{split}: {found.dataset_anomaly_info.description}")
    return problems, notes


def load_anomalies(uri: str, splits: list[str]) -> dict[str, anomalies_pb2.Anomalies]:
    """ExampleValidator's anomalies of each split, from its artifact's folder."""
    return {
        split: anomalies_util.load_anomalies_binary(_split_file(uri, split, ANOMALIES_FILE))
        for split in splits
    }


def _split_file(uri: str, split: str, filename: str) -> str:
    """A file of one split in an artifact's folder, where TFX components write it."""
    return os.path.join(uri, f"Split-{split}", filename)


def decide(
    anomaly_problems: list[str],
    notes: list[str],
    image_report: dict,
    drifts: dict[str, float],
    max_label_drift: float,
    fail_on_warnings: bool,
    span_findings: Sequence[str] = (),
    fail_on_span_drift: bool = False,
) -> tuple[Verdict, list[str]]:
    """`span_findings`: the new span's drift from the previous span beyond the bounds."""
    verdict = Verdict(failures=list(anomaly_problems), warnings=list(image_report["warnings"]))
    verdict.failures += image_report["failures"]
    for split, drift in drifts.items():
        if drift > max_label_drift:
            verdict.warnings.append(
                f"{split}: label distribution differs from train by {drift:.3f} (L-infinity), "
                f"more than {max_label_drift:.3f}"
            )
    if fail_on_warnings:
        verdict.failures += verdict.warnings
        verdict.warnings = []
    (verdict.failures if fail_on_span_drift else verdict.warnings).extend(span_findings)
    return verdict, notes


def render(
    verdict: Verdict, notes: list[str], drifts: dict[str, float], span: SpanDrift | None = None
) -> str:
    lines = [f"Data validation: {'PASSED' if verdict.passed else 'FAILED'}"]
    lines += [f"  FAIL: {line}" for line in verdict.failures]
    lines += [f"  WARN: {line}" for line in verdict.warnings]
    lines += [f"  NOTE: {line}" for line in notes]
    lines += [f"  label drift train -> {split}: {drift:.3f}" for split, drift in drifts.items()]
    lines += [f"  {line}" for line in span.lines()] if span else []
    return "\n".join(lines)


def _load_statistics(artifact) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
    return {
        split: tfdv.load_stats_binary(_split_file(artifact.uri, split, STATISTICS_FILE))
        for split in artifact_utils.decode_split_names(artifact.split_names)
    }


def _examples(statistics: statistics_pb2.DatasetFeatureStatisticsList) -> int:
    return statistics.datasets[0].num_examples if statistics.datasets else 0


@dataclass
class Assessment:
    """What the data's checks found: the verdict and every figure behind it."""

    verdict: Verdict
    notes: list[str]
    label_drift: dict[str, float]  # eval splits' label distribution against train's
    span: SpanDrift | None  # against the served span's training data
    image_report: dict  # the ImageValidator's report.json


def assess(
    statistics: types.Artifact,
    schema: types.Artifact,
    anomalies: types.Artifact,
    image_report: types.Artifact,
    label_key: str,
    max_label_drift: float,
    fail_on_warnings: bool,
    max_span_label_drift: float,
    max_span_image_change: float,
    fail_on_span_drift: bool,
    serving_model_dir: str,
    previous_version: int | str,
) -> Assessment:
    """The DataGate's judgement, which the DataReport shows: the same inputs, the same answer.

    `previous_version`: the served version of an earlier span (ServingHistory's), or
    NO_VERSION; its training data's profile is what the new span's drift is measured
    against. On Kubeflow it arrives as text: TFX's compiler types a dynamic parameter STRING.
    """
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    problems, notes = anomaly_findings(load_anomalies(anomalies.uri, splits))
    stats = _load_statistics(statistics)
    curated = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    drifts = {
        split: label_drift(stats["train"], split_stats, curated, label_key)
        for split, split_stats in stats.items()
        if split != "train" and _examples(split_stats) and _examples(stats["train"])
    }
    report = read_report(image_report.uri)
    span = None
    if int(previous_version) != NO_VERSION:
        served = os.path.join(serving_model_dir, str(previous_version))
        span = span_drift(
            read_provenance(served)["span"],
            tfdv.load_stats_binary(os.path.join(served, STATISTICS_DIR, TRAIN_STATISTICS)),
            stats["train"],
            read_report(os.path.join(served, IMAGE_REPORT_DIR)),
            report,
            curated,
            label_key,
        )
    verdict, notes = decide(
        problems,
        notes,
        report,
        drifts,
        max_label_drift,
        fail_on_warnings,
        span.findings(max_span_label_drift, max_span_image_change) if span else [],
        fail_on_span_drift,
    )
    return Assessment(verdict, notes, drifts, span, report)


@tfx.dsl.components.component
def DataGate(
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
    image_report: tfx.dsl.components.InputArtifact[ImageValidationReport],
    result: tfx.dsl.components.OutputArtifact[DataGateResult],
    label_key: tfx.dsl.components.Parameter[str],
    max_label_drift: tfx.dsl.components.Parameter[float],
    fail_on_warnings: tfx.dsl.components.Parameter[bool],
    max_span_label_drift: tfx.dsl.components.Parameter[float],
    max_span_image_change: tfx.dsl.components.Parameter[float],
    fail_on_span_drift: tfx.dsl.components.Parameter[bool],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    previous_version: tfx.dsl.components.Parameter[int],
) -> None:
    """Fails the run when `assess` rejects the data."""
    found = assess(
        statistics,
        schema,
        anomalies,
        image_report,
        label_key,
        max_label_drift,
        fail_on_warnings,
        max_span_label_drift,
        max_span_image_change,
        fail_on_span_drift,
        serving_model_dir,
        previous_version,
    )
    verdict, notes, drifts, span = found.verdict, found.notes, found.label_drift, found.span
    text = render(verdict, notes, drifts, span)
    with tf.io.gfile.GFile(os.path.join(result.uri, RESULT_JSON), "w") as f:
        json.dump(
            {
                "passed": verdict.passed,
                "failures": verdict.failures,
                "warnings": verdict.warnings,
                "notes": notes,
                "label_drift": drifts,
                "span_drift": span.to_dict() if span else None,
            },
            f,
            indent=2,
        )
    with tf.io.gfile.GFile(os.path.join(result.uri, RESULT_TEXT), "w") as f:
        f.write(text + "\n")
    result.set_int_custom_property(PASSED_PROPERTY, int(verdict.passed))
    record_key_figure(result, DATA_GATE, "passed" if verdict.passed else "REJECTED the data")
    if not verdict.passed:
        report_file = os.path.join(image_report.uri, REPORT_TEXT)
        with tf.io.gfile.GFile(report_file) as f:
            image_text = f.read()
        raise DataValidationError(
            f"The data failed validation; nothing was trained or pushed.\n{text}\n"
            f"{image_text}(This report: {report_file})"
        )
