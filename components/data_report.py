"""DataReport: the data's checks as one web page, written whether the data passes or not.

It runs before the DataGate, on the same inputs and through the same judgement
(data_gate.assess), so the page exists, and is in the consoles as a
`system.HTML` artifact (components/console.py), even when the gate then stops
the run: that is when a person most needs to see it. Per split it shows the
records and how many were good, the classes and their sizes, the images'
sizes, formats and channels, the bad records with what is wrong, the schema
anomalies, and the drift: eval splits against train, this span against the
served span's training data.
"""

from tfx import v1 as tfx
from tfx.types import standard_artifacts

from imgclf.components.console import HtmlPage, publish_page
from imgclf.components.data_gate import Assessment, assess
from imgclf.components.duplicates import Duplicates
from imgclf.components.image_validator import ImageValidationReport
from imgclf.components.pages import bullet_list, page, paragraph, section, table

DATA_REPORT_TITLE = "Data report"
LISTED_BAD = 50  # bad records listed per split; report.json holds them all
LISTED_DUPLICATES = 50  # groups of copies listed; report.json holds them all


def render_data_page(found: Assessment) -> str:
    report = found.image_report
    class_names = report["class_names"]
    splits = report["splits"]
    return page(
        DATA_REPORT_TITLE,
        [
            _verdict(found),
            _splits(splits),
            _classes(splits, class_names),
            _bad_records(splits),
            _duplicates(Duplicates.from_dict(report["duplicates"]), class_names),
            _drift(found),
        ],
    )


def _verdict(found: Assessment) -> str:
    verdict = found.verdict
    parts = [
        paragraph(
            "Passed: training may use this data."
            if verdict.passed
            else "Rejected: nothing is trained on this data.",
            "verdict " + ("good" if verdict.passed else "bad"),
        )
    ]
    for heading, lines in (
        ("Failures", verdict.failures),
        ("Warnings", verdict.warnings),
        ("Notes", found.notes),
    ):
        if lines:
            parts += [paragraph(f"{heading}:"), bullet_list(lines)]
    return section("Verdict", *parts)


def _splits(splits: dict) -> str:
    rows = []
    for split, summary in splits.items():
        sizes = (
            f"{summary['min_height']}-{summary['max_height']} x "
            f"{summary['min_width']}-{summary['max_width']} px"
            if summary["good"]
            else ""
        )
        rows.append(
            (
                split,
                summary["total"],
                summary["good"],
                summary["total"] - summary["good"],
                sizes,
                _counts(summary.get("formats", {})),
                _counts(summary["channels"]),
            )
        )
    return section(
        "Splits",
        table(["split", "records", "good", "bad", "image sizes", "formats", "channels"], rows),
    )


def _counts(counts: dict) -> str:
    return ", ".join(f"{key}: {count}" for key, count in counts.items())


def _classes(splits: dict, class_names: list[str]) -> str:
    rows = [
        (name, *(splits[split]["labels"].get(str(label), 0) for split in splits))
        for label, name in enumerate(class_names)
    ]
    return section("Good images per class", table(["class", *splits], rows))


def _bad_records(splits: dict) -> str:
    rows = [
        (split, record["id"], record["location"], record["problem"])
        for split, summary in splits.items()
        for record in summary["bad"][:LISTED_BAD]
    ]
    if not rows:
        return section("Bad records", paragraph("Every image decoded and matched the schema."))
    listed = sum(min(len(summary["bad"]), LISTED_BAD) for summary in splits.values())
    total = sum(len(summary["bad"]) for summary in splits.values())
    note = [] if listed == total else [paragraph(f"The first {listed} of {total}.")]
    return section("Bad records", *note, table(["split", "id", "where", "problem"], rows))


def _duplicates(duplicates: Duplicates, class_names: list[str]) -> str:
    if not duplicates.groups:
        return section("Duplicate images", paragraph("Every image is found once."))
    counts = [
        *(
            (f"{split} images also in train", len(pairs))
            for split, pairs in duplicates.in_train().items()
        ),
        *(
            (f"{split} images repeating one of {split}", len(copies))
            for split, copies in duplicates.within().items()
        ),
        ("images under different labels", len(duplicates.conflicting())),
    ]
    rows = [
        (index + 1, copy.split, copy.record_id, copy.location, class_names[copy.label])
        for index, group in enumerate(duplicates.groups[:LISTED_DUPLICATES])
        for copy in group
    ]
    shown = min(len(duplicates.groups), LISTED_DUPLICATES)
    return section(
        "Duplicate images",
        paragraph(
            f"Images found more than once (the same pixels): {len(duplicates.groups)}; "
            f"the first {shown} are listed."
        ),
        table(["found", "count"], counts),
        table(["image", "split", "id", "where", "class"], rows),
    )


def _drift(found: Assessment) -> str:
    rows = [(f"train -> {split}", value) for split, value in found.label_drift.items()]
    parts = [
        paragraph("Label distribution distance (L-infinity) between splits."),
        table(["between", "label drift"], rows) if rows else paragraph("One split only."),
    ]
    if found.span:
        parts.append(
            paragraph(f"Against span {found.span.previous_span}, which the served model learnt:")
        )
        parts.append(
            table(
                ["measure", "change"],
                [("label drift", found.span.label_drift), *found.span.image_changes.items()],
            )
        )
    else:
        parts.append(paragraph("No served model of an earlier span to compare with."))
    return section("Drift", *parts)


@tfx.dsl.components.component
def DataReport(
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
    anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
    image_report: tfx.dsl.components.InputArtifact[ImageValidationReport],
    page: tfx.dsl.components.OutputArtifact[HtmlPage],
    label_key: tfx.dsl.components.Parameter[str],
    max_label_drift: tfx.dsl.components.Parameter[float],
    fail_on_warnings: tfx.dsl.components.Parameter[bool],
    max_span_label_drift: tfx.dsl.components.Parameter[float],
    max_span_image_change: tfx.dsl.components.Parameter[float],
    fail_on_span_drift: tfx.dsl.components.Parameter[bool],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    previous_version: tfx.dsl.components.Parameter[int],
) -> None:
    """The DataGate's inputs and parameters; the page, never a failure."""
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
    publish_page(page, render_data_page(found), DATA_REPORT_TITLE)
