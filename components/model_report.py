"""ModelReport: after the push decision, why the model was or was not blessed; its worst errors.

It writes, as one artifact beside the evaluation:
- `comparison.txt` / `comparison.json`: the candidate against the last blessed
  model on every metric TFMA computed, whether it was blessed and which
  threshold decided;
- `most_wrong.csv` / `most_wrong.png`: the eval images the candidate got wrong
  with the highest confidence (id, true class, predicted class, confidence), and
  a contact sheet of them, so a person sees label noise or confusable classes.

And, for a browser and the pipeline consoles (components/console.py): all of
that with the training curves, the serving check and the push as one web page
(components/model_page.py), a `system.HTML` artifact; the confusion matrix as
a `system.ClassificationMetrics` and the headline figures as a `system.Metrics`.
"""

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw
from tfx import types
from tfx import v1 as tfx
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from imgclf.components.console import (
    ConsoleClassificationMetrics,
    ConsoleMetrics,
    HtmlPage,
    publish_confusion_matrix,
    publish_metrics,
    publish_page,
)
from imgclf.components.duplicates import eval_images_in_train
from imgclf.components.evaluation import (
    ACCURACY,
    BASELINE,
    CANDIDATE,
    EXAMPLE_COUNT,
    ModelMetrics,
    balanced_accuracy,
    read_confusion_matrix,
    read_failures,
    read_metrics,
)
from imgclf.components.image_validator import ImageValidationReport, read_report
from imgclf.components.inspection import image_format
from imgclf.components.model_page import ShownMistake, render_model_page
from imgclf.components.pusher import push_outcome
from imgclf.components.serving_check import RESULT_JSON, describe, read_result
from imgclf.imagedata.records import read_labels
from imgclf.settings.names import BLESSED_PROPERTY, EVAL_SPLIT, ID_KEY
from imgclf.trainer.confidence import accuracy_interval
from imgclf.trainer.export import EXAMPLES_INPUT, SERVING_DEFAULT, read_summary

COMPARISON_TEXT = "comparison.txt"
BALANCED_ACCURACY = "balanced_accuracy"
COMPARISON_JSON = "comparison.json"
MOST_WRONG_CSV = "most_wrong.csv"
MOST_WRONG_PNG = "most_wrong.png"
# How the consoles title the artifacts (their `display_name`).
MODEL_REPORT_TITLE = "Model report"
MODEL_METRICS_TITLE = "Model metrics"
CONFUSION_MATRIX_TITLE = "Confusion matrix (test split)"
TILE = 96  # pixels per image on the contact sheet
CAPTION = 26  # pixels of text under each image
COLUMNS = 4
BATCH_SIZE = 64


class ModelReportArtifact(types.Artifact):
    """comparison.txt/json and most_wrong.csv/png."""

    TYPE_NAME = "imgclf.ModelReport"


@dataclass(frozen=True)
class Mistake:
    id: str
    true_class: str
    predicted_class: str
    confidence: float


def metric_rows(
    candidate: ModelMetrics, baseline: ModelMetrics | None, class_names: list[str]
) -> list[tuple[str, float, float | None]]:
    """(metric, candidate value, baseline value or None), overall metrics first."""

    def named(metrics: ModelMetrics) -> dict[str, float]:
        values = dict(metrics.overall)
        if metrics.accuracy_by_label:
            values[BALANCED_ACCURACY] = balanced_accuracy(metrics)
        for label, name in enumerate(class_names):
            for kind, per_class in (("precision", metrics.precision), ("recall", metrics.recall)):
                if label in per_class:
                    values[f"{kind}[{name}]"] = per_class[label]
        return values

    ours, theirs = named(candidate), named(baseline) if baseline else {}
    return [(name, value, theirs.get(name)) for name, value in ours.items()]


def render_comparison(
    rows: list[tuple[str, float, float | None]],
    has_baseline: bool,
    blessed: bool,
    failures: list[str],
) -> str:
    lines = ["Candidate model " + ("vs. the last blessed model" if has_baseline else "evaluation")]
    if not has_baseline:
        lines.append("  No served model of these classes: only the absolute bounds applied.")
    lines.append(f"  {'metric':34} {'candidate':>10} {'baseline':>10} {'change':>8}")
    for name, value, baseline in rows:
        cells = [_number(name, value)]
        if baseline is not None:
            cells.append(_number(name, baseline))
            if name != EXAMPLE_COUNT:
                cells.append(_number(name, value - baseline, width=8, sign="+"))
        lines.append(f"  {name:34} " + " ".join(cells))
    if blessed:
        lines.append("Blessed: yes, every threshold was met.")
    else:
        lines.append("Blessed: no. Decided by:")
        lines += [f"  {failure}" for failure in failures]
    return "\n".join(lines)


def _number(name: str, value: float, width: int = 10, sign: str = "") -> str:
    """Counts as integers; NaN (e.g. the precision of a class never predicted) as n/a."""
    if math.isnan(value):
        return f"{'n/a':>{width}}"
    if name == EXAMPLE_COUNT:
        return f"{value:{width}.0f}"
    return f"{value:{sign}{width}.3f}"


def find_mistakes(
    model_dir: str, examples_pattern: str, class_names: list[str], label_key: str, image_key: str
) -> list[tuple[Mistake, bytes]]:
    """Every wrong prediction on the examples, most confident first, with its image."""
    serve = tf.saved_model.load(model_dir).signatures[SERVING_DEFAULT]
    dataset = tf.data.TFRecordDataset(tf.io.gfile.glob(examples_pattern), compression_type="GZIP")
    mistakes = []
    for batch in dataset.batch(BATCH_SIZE):
        probabilities = serve(**{EXAMPLES_INPUT: batch})["probabilities"].numpy()
        for serialized, row in zip(batch.numpy(), probabilities):
            features = tf.train.Example.FromString(serialized).features.feature
            label = features[label_key].int64_list.value[0]
            predicted = int(np.argmax(row))
            if predicted == label:
                continue
            record_id = features[ID_KEY].bytes_list.value[0].decode() if ID_KEY in features else ""
            mistake = Mistake(
                record_id, class_names[label], class_names[predicted], float(row[predicted])
            )
            mistakes.append((mistake, features[image_key].bytes_list.value[0]))
    mistakes.sort(key=lambda pair: -pair[0].confidence)
    return mistakes


def contact_sheet(mistakes: list[tuple[Mistake, bytes]]) -> Image.Image:
    """A grid of the images, each captioned with its id, true and predicted class."""
    rows = max(1, -(-len(mistakes) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (mistake, encoded) in enumerate(mistakes):
        x, y = (index % COLUMNS) * TILE, (index // COLUMNS) * (TILE + CAPTION)
        image = Image.open(io.BytesIO(encoded)).convert("RGB").resize((TILE, TILE))
        sheet.paste(image, (x, y))
        draw.text((x + 2, y + TILE), f"{mistake.true_class} as", fill="black")
        draw.text(
            (x + 2, y + TILE + 12),
            f"{mistake.predicted_class} {mistake.confidence:.2f}",
            fill="firebrick",
        )
    return sheet


def write_most_wrong(mistakes: list[tuple[Mistake, bytes]], out_dir: str) -> None:
    with tf.io.gfile.GFile(os.path.join(out_dir, MOST_WRONG_CSV), "w") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "true_class", "predicted_class", "confidence"])
        for mistake, _ in mistakes:
            writer.writerow(
                [
                    mistake.id,
                    mistake.true_class,
                    mistake.predicted_class,
                    f"{mistake.confidence:.4f}",
                ]
            )
    buffer = io.BytesIO()
    contact_sheet(mistakes).save(buffer, format="PNG")
    with tf.io.gfile.GFile(os.path.join(out_dir, MOST_WRONG_PNG), "wb") as f:
        f.write(buffer.getvalue())


@tfx.dsl.components.component
def ModelReport(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    evaluation: tfx.dsl.components.InputArtifact[standard_artifacts.ModelEvaluation],
    image_report: tfx.dsl.components.InputArtifact[ImageValidationReport],
    report: tfx.dsl.components.OutputArtifact[ModelReportArtifact],
    page: tfx.dsl.components.OutputArtifact[HtmlPage],
    metrics: tfx.dsl.components.OutputArtifact[ConsoleMetrics],
    confusion_matrix: tfx.dsl.components.OutputArtifact[ConsoleClassificationMetrics],
    labels_path: tfx.dsl.components.Parameter[str],
    image_key: tfx.dsl.components.Parameter[str],
    label_key: tfx.dsl.components.Parameter[str],
    most_wrong: tfx.dsl.components.Parameter[int],
    serving_check: tfx.dsl.components.InputArtifact[standard_artifacts.InfraBlessing] = None,
    pushed_model: tfx.dsl.components.InputArtifact[standard_artifacts.PushedModel] = None,
) -> None:
    """`image_report`: the ImageValidator's, for how many eval images training saw;
    `serving_check`: the ServingCheck's blessing, when it ran (TFX's InfraValidator
    writes no figures); `pushed_model`: the Pusher's outcome."""
    class_names = read_labels(labels_path)
    models = read_metrics(evaluation.uri, label_key)
    candidate, baseline = models[CANDIDATE], models.get(BASELINE)
    blessed, failures = read_failures(evaluation.uri, class_names)
    rows = metric_rows(candidate, baseline, class_names)
    with tf.io.gfile.GFile(os.path.join(report.uri, COMPARISON_TEXT), "w") as f:
        f.write(render_comparison(rows, baseline is not None, blessed, failures) + "\n")

    mistakes = find_mistakes(
        path_utils.serving_model_dir(model.uri),
        os.path.join(artifact_utils.get_split_uri([examples], EVAL_SPLIT), "*"),
        class_names,
        label_key,
        image_key,
    )
    write_most_wrong(mistakes[:most_wrong], report.uri)
    accuracy, example_count = candidate.overall[ACCURACY], int(candidate.overall[EXAMPLE_COUNT])
    pushed_version, push = push_outcome(pushed_model)
    confusion = read_confusion_matrix(evaluation.uri, len(class_names))
    content = {
        "blessed": blessed,
        "decided_by": failures,
        "has_baseline": baseline is not None,
        "metrics": [
            {"metric": name, "candidate": value, "baseline": other} for name, value, other in rows
        ],
        "accuracy_by_true_label": {
            class_names[label]: value
            for label, value in sorted(candidate.accuracy_by_label.items())
        },
        "confusion_matrix": {"labels": class_names, "counts": confusion},
        "mistakes": len(mistakes),
        "most_wrong": [asdict(mistake) for mistake, _ in mistakes[:most_wrong]],
        ACCURACY: accuracy,
        "example_count": example_count,
        "accuracy_interval": accuracy_interval(accuracy, example_count),
        "in_train": eval_images_in_train(read_report(image_report.uri)),
        "pushed_version": pushed_version,
        "push": push,
    }
    with tf.io.gfile.GFile(os.path.join(report.uri, COMPARISON_JSON), "w") as f:
        json.dump(content, f, indent=2)
    report.set_int_custom_property(BLESSED_PROPERTY, int(blessed))

    checked = None
    if serving_check is not None and tf.io.gfile.exists(
        os.path.join(serving_check.uri, RESULT_JSON)
    ):
        checked = describe(read_result(serving_check.uri))
    text = render_model_page(
        content,
        read_summary(path_utils.serving_model_dir(model.uri)),
        checked,
        [
            ShownMistake(**asdict(mistake), image=image, mime=f"image/{image_format(image)}")
            for mistake, image in mistakes[:most_wrong]
        ],
    )
    publish_page(page, text, MODEL_REPORT_TITLE)
    publish_confusion_matrix(confusion_matrix, class_names, confusion, CONFUSION_MATRIX_TITLE)
    figures = {
        "accuracy": accuracy,
        "blessed": int(blessed),
        "example_count": example_count,
        "pushed_version": pushed_version or 0,
    }
    if candidate.accuracy_by_label:
        figures[BALANCED_ACCURACY] = balanced_accuracy(candidate)
    publish_metrics(metrics, figures, MODEL_METRICS_TITLE)
