"""The model report as one web page: what a person needs to trust, or not, a new model.

Rendered by the ModelReport component from what the run measured: a page can be
rendered from saved figures alone (and is tested so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from imgclf.components.duplicates import held_out
from imgclf.components.evaluation import ACCURACY, EXAMPLE_COUNT
from imgclf.components.pages import (
    bullet_list,
    figure,
    heat_table,
    image_data_uri,
    line_chart,
    page,
    paragraph,
    section,
    table,
)
from imgclf.trainer.confidence import transfer_worth, with_interval
from imgclf.trainer.export import SCRATCH
from imgclf.trainer.schedule import kept_accuracy

CURVES = (("accuracy", ("accuracy", "val_accuracy")), ("loss", ("loss", "val_loss")))


@dataclass(frozen=True)
class ShownMistake:
    """One of the most confident mistakes, with its image as stored in the record."""

    id: str
    true_class: str
    predicted_class: str
    confidence: float
    image: bytes
    mime: str


def render_model_page(
    comparison: dict,
    training: dict | None,
    serving_check: str | None,
    mistakes: list[ShownMistake],
) -> str:
    """`comparison`: ModelReport's comparison.json; `training`: the Trainer's summary;
    `serving_check`: the ServingCheck's one-line account, if it ran."""
    sections = [_verdict(comparison), _comparison(comparison), _classes(comparison)]
    if training:
        sections.append(_training(training))
    if serving_check:
        sections.append(section("Serving check", paragraph(serving_check)))
    sections.append(_mistakes(comparison, mistakes))
    return page("Model report", sections)


def _verdict(comparison: dict) -> str:
    low, high = comparison["accuracy_interval"]
    lines = [
        paragraph(
            f"Test accuracy {comparison[ACCURACY]:.3f} (95% interval {low:.3f} to {high:.3f}) "
            f"on {held_out(comparison['example_count'], comparison['in_train'])}.",
            "verdict",
        ),
        paragraph(
            "Blessed: yes, every threshold was met." if comparison["blessed"] else "Blessed: no.",
            "good" if comparison["blessed"] else "bad",
        ),
    ]
    if comparison["decided_by"]:
        lines.append(paragraph("Decided by:"))
        lines.append(bullet_list(comparison["decided_by"]))
    lines.append(paragraph(comparison["push"]))
    return section("Verdict", *lines)


def _comparison(comparison: dict) -> str:
    intro = (
        "The candidate against the model now served (the Evaluator's baseline)."
        if comparison["has_baseline"]
        else "No served model of these classes: only the absolute bounds applied."
    )
    rows = []
    for row in comparison["metrics"]:
        name, ours, theirs = row["metric"], row["candidate"], row["baseline"]
        if name == EXAMPLE_COUNT:
            rows.append((name, int(ours), "" if theirs is None else int(theirs), ""))
        else:
            rows.append((name, ours, theirs, "" if theirs is None else _signed(ours - theirs)))
    return section(
        "Candidate and served model",
        paragraph(intro),
        table(["metric", "candidate", "served", "change"], rows),
    )


def _signed(change: float) -> str:
    return "n/a" if math.isnan(change) else f"{change:+.3f}"


def _classes(comparison: dict) -> str:
    recalls = comparison["accuracy_by_true_label"]
    matrix = comparison["confusion_matrix"]
    return section(
        "Classes",
        table(["class", "recall"], sorted(recalls.items(), key=lambda item: item[1])),
        paragraph("Confusion matrix: each row a true class, each column what the model said."),
        heat_table(matrix["labels"], matrix["counts"]),
    )


def _training(summary: dict) -> str:
    history = summary["history"]
    phases = summary["phases"]
    # The dashed line: where fine-tuning began.
    marks = [phase["epochs"][0] for phase in phases[1:] if phase["epochs"]]
    charts = [
        line_chart(
            title,
            history["epoch"],
            {name: history[name] for name in names if name in history},
            marks,
        )
        for title, names in CURVES
    ]
    lines = [
        paragraph(
            f"{summary['base_model']} with {summary['strategy']} over "
            f"{summary['num_replicas']} replica(s): "
            + "; ".join(
                f"{phase['name'].replace('_', ' ')} epochs {phase['epochs'][0]}-"
                f"{phase['epochs'][-1]} at learning rate {phase['learning_rate']:.2g}"
                for phase in phases
                if phase["epochs"]
            )
            + "."
        ),
        *charts,
    ]
    validation = summary.get("validation")  # recorded since issue 30
    if validation:
        lines.append(
            paragraph(
                "The kept weights' validation accuracy: "
                f"{with_interval(validation['accuracy'], validation['images'])} on "
                f"{validation['images']} images."
            )
        )
    scratch = summary.get("scratch")
    if scratch:
        worth = transfer_worth(
            kept_accuracy(phases),
            scratch,
            summary["validation_examples"],
            scratch_exported=summary["exported"] == SCRATCH,
        )
        lines.append(paragraph(f"What transfer was worth: {worth}."))
    return section("Training", *lines)


def _mistakes(comparison: dict, mistakes: list[ShownMistake]) -> str:
    if not mistakes:
        return section("Most confident mistakes", paragraph("No test image was misclassified."))
    figures = [
        figure(
            image_data_uri(mistake.image, mistake.mime),
            f"{mistake.id}: {mistake.true_class} taken for {mistake.predicted_class} "
            f"({mistake.confidence:.2f})",
        )
        for mistake in mistakes
    ]
    return section(
        "Most confident mistakes",
        paragraph(
            f"{len(mistakes)} of the {comparison['mistakes']} misclassified test images, the "
            "most confident first: label noise and confusable classes show here."
        ),
        '<div class="mistakes">' + "".join(figures) + "</div>",
    )
