"""ImageValidator: a Beam TFX component that decodes every image of every split.

It reads the records as ExampleGen wrote them, before any other component:
TFDV cannot even compute statistics over records whose features disagree
with the schema's types, so such records are found and set aside here first.

For each split it records the total, good and bad records (each bad one by id
and place, with what is wrong), the channel counts in the files, the range of
image sizes and the label counts; across splits, every image found more than
once (components/duplicates.py); writes that as `report.json` and
`report.txt`; and judges it by the validation policy. The good records are
written out as `valid_examples`, which training and evaluation read, so a bad
record the policy tolerates is left out and listed, never silently dropped.
The component always succeeds and sets `passed` on its report: the DataGate
component stops the run.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import apache_beam as beam
import tensorflow as tf
from tfx import types
from tfx.components.example_gen.utils import SPAN_PROPERTY_NAME
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from imgclf.components.duplicates import Duplicates, judge_duplicates
from imgclf.components.example_gen import span_of
from imgclf.components.inspection import (
    Finding,
    SplitSummary,
    Verdict,
    feature_kinds,
    inspect_record,
    judge,
    render_text,
)
from imgclf.components.key_figure import record_key_figure
from imgclf.imagedata.records import read_labels, read_tfrecord_file
from imgclf.settings.checks import ValidationConfig
from imgclf.settings.names import IMAGE_VALIDATOR, PASSED_PROPERTY, SPANS_PROPERTY

REPORT_JSON = "report.json"
REPORT_TEXT = "report.txt"
DUPLICATES = "duplicates"  # Beam's groups of copies, read into the report
VALID_PREFIX = "data_tfrecord"


class ImageValidationReport(types.Artifact):
    """report.json and report.txt; custom property `passed` (1 or 0)."""

    TYPE_NAME = "imgclf.ImageValidationReport"


class ImageValidatorSpec(types.ComponentSpec):
    PARAMETERS: ClassVar[dict] = {
        "labels_path": ExecutionParameter(type=str),
        "image_key": ExecutionParameter(type=str),
        "label_key": ExecutionParameter(type=str),
        "max_image_pixels": ExecutionParameter(type=int),
        "policy": ExecutionParameter(type=str),  # ValidationConfig as JSON
    }
    INPUTS: ClassVar[dict] = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "schema": ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS: ClassVar[dict] = {
        "report": ChannelParameter(type=ImageValidationReport),
        "valid_examples": ChannelParameter(type=standard_artifacts.Examples),
    }


class _Summarize(beam.CombineFn):
    def create_accumulator(self) -> SplitSummary:
        return SplitSummary()

    def add_input(self, summary: SplitSummary, finding: Finding) -> SplitSummary:
        return summary.add(finding)

    def merge_accumulators(self, summaries) -> SplitSummary:
        merged = SplitSummary()
        for summary in summaries:
            merged.merge(summary)
        return merged

    def extract_output(self, summary: SplitSummary) -> SplitSummary:
        return summary


def _indexed_records(path: str, split: str):
    """(serialized record, 'split/file[index]') for every record of an ExampleGen file."""
    name = os.path.basename(path)
    for index, record in enumerate(read_tfrecord_file(path)):
        yield record, f"{split}/{name}[{index}]"


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        report = artifact_utils.get_single_instance(output_dict["report"])
        valid = artifact_utils.get_single_instance(output_dict["valid_examples"])
        class_names = read_labels(exec_properties["labels_path"])
        policy = ValidationConfig.model_validate_json(exec_properties["policy"])
        splits = artifact_utils.decode_split_names(examples.split_names)
        _describe_like(valid, examples)

        schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri(input_dict["schema"]))
        )
        inspect = dict(
            kinds=feature_kinds(schema),
            image_key=exec_properties["image_key"],
            label_key=exec_properties["label_key"],
            num_classes=len(class_names),
            min_image_size=policy.min_image_size,
            max_image_pixels=exec_properties["max_image_pixels"],
        )
        with self._make_beam_pipeline() as pipeline:
            copies = [
                _inspect_split(pipeline, split, examples, inspect, report, valid)
                for split in splits
            ]
            _group_copies(copies, report)
        summaries = {split: _read_summary(report.uri, split) for split in splits}
        duplicates = Duplicates.from_groups(_read_written(report.uri, DUPLICATES))
        verdict = judge(summaries, class_names, policy)
        judge_duplicates(duplicates, summaries, class_names, policy, verdict)
        _write_report(report, summaries, duplicates, class_names, verdict)
        # The span the report describes, as on every artifact made from the examples.
        report.set_int_custom_property(SPAN_PROPERTY_NAME, span_of(examples))


def _inspect_split(
    pipeline: beam.Pipeline,
    split: str,
    examples: types.Artifact,
    inspect: dict[str, Any],
    report: types.Artifact,
    valid: types.Artifact,
) -> beam.PCollection:
    """Every record of the split inspected: a summary of the findings into the report's
    folder, the good records into the valid examples' split. Returns the good records as
    (fingerprint, (split, label, location, record id))."""
    files = tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
    findings = (
        pipeline
        | f"ListFiles[{split}]" >> beam.Create(sorted(files))
        | f"Distribute[{split}]" >> beam.Reshuffle()
        | f"Read[{split}]" >> beam.FlatMap(_indexed_records, split)
        | f"Inspect[{split}]"
        >> beam.MapTuple(
            lambda record, location: (record, inspect_record(record, location, **inspect))
        )
    )
    (
        findings
        | f"Findings[{split}]" >> beam.MapTuple(lambda _, finding: finding)
        | f"Summarize[{split}]" >> beam.CombineGlobally(_Summarize())
        | f"ToJson[{split}]" >> beam.Map(lambda summary: json.dumps(summary.to_dict()))
        | f"WriteSummary[{split}]"
        >> beam.io.WriteToText(os.path.join(report.uri, f"summary-{split}"), shard_name_template="")
    )
    good = findings | f"KeepGood[{split}]" >> beam.Filter(lambda pair: pair[1].problem is None)
    (
        good
        | f"Records[{split}]" >> beam.MapTuple(lambda record, _: record)
        | f"WriteGood[{split}]"
        >> beam.io.WriteToTFRecord(
            os.path.join(artifact_utils.get_split_uri([valid], split), VALID_PREFIX),
            file_name_suffix=".gz",
        )
    )
    return good | f"Fingerprints[{split}]" >> beam.MapTuple(
        lambda _, found: (
            found.fingerprint,
            (split, found.label, found.location, found.record_id),
        )
    )


def _group_copies(copies: list[beam.PCollection], report: types.Artifact) -> None:
    """The groups of records with the same pixels, as one JSON list in the report's folder."""
    (
        copies
        | "AllSplits" >> beam.Flatten()
        | "ByFingerprint" >> beam.GroupByKey()
        | "Copies" >> beam.MapTuple(lambda _, group: list(group))
        | "MoreThanOne" >> beam.Filter(lambda group: len(group) > 1)
        | "AllGroups" >> beam.combiners.ToList()
        | "GroupsToJson" >> beam.Map(json.dumps)
        | "WriteGroups"
        >> beam.io.WriteToText(os.path.join(report.uri, DUPLICATES), shard_name_template="")
    )


def _write_report(
    report: types.Artifact,
    summaries: dict[str, SplitSummary],
    duplicates: Duplicates,
    class_names: list[str],
    verdict: Verdict,
) -> None:
    """The report as JSON (for the DataGate and the Pusher) and as text; its verdict and key
    figure on the artifact."""
    content = {
        PASSED_PROPERTY: verdict.passed,
        "failures": verdict.failures,
        "warnings": verdict.warnings,
        "class_names": class_names,
        "splits": {split: summary.to_dict() for split, summary in summaries.items()},
        "duplicates": duplicates.to_dict(),
    }
    with tf.io.gfile.GFile(os.path.join(report.uri, REPORT_JSON), "w") as f:
        json.dump(content, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(report.uri, REPORT_TEXT), "w") as f:
        f.write(render_text(summaries, class_names, verdict) + "\n" + duplicates.describe() + "\n")
    report.set_int_custom_property(PASSED_PROPERTY, int(verdict.passed))
    counts = ", ".join(
        f"{split} {summary.good} of {summary.total} valid" for split, summary in summaries.items()
    )
    verdict_word = "passed" if verdict.passed else "FAILED"
    record_key_figure(report, IMAGE_VALIDATOR, f"{counts}; {verdict_word}")


def _describe_like(valid: types.Artifact, examples: types.Artifact) -> None:
    """The valid examples are the same splits, span and format, with fewer records."""
    valid.split_names = examples.split_names
    # StatisticsGen and the Trainer read the span from this property.
    valid.span = span_of(examples)
    valid.version = examples.version
    if examples.has_custom_property(SPANS_PROPERTY):
        valid.set_string_custom_property(
            SPANS_PROPERTY, examples.get_string_custom_property(SPANS_PROPERTY)
        )
    examples_utils.set_payload_format(valid, examples_utils.get_payload_format(examples))


def _read_summary(report_uri: str, split: str) -> SplitSummary:
    return SplitSummary.from_dict(_read_written(report_uri, f"summary-{split}"))


def _read_written(report_uri: str, name: str):
    """A JSON file the Beam pipeline wrote into the report's folder, then gone."""
    path = os.path.join(report_uri, name)
    with tf.io.gfile.GFile(path) as f:
        values = json.load(f)
    tf.io.gfile.remove(path)
    return values


def read_report(report_uri: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(report_uri, REPORT_JSON)) as f:
        return json.load(f)


class ImageValidator(base_beam_component.BaseBeamComponent):
    """Decodes every image; writes a report and the valid examples; judges by the policy."""

    SPEC_CLASS = ImageValidatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: types.BaseChannel,
        labels_path: str,
        image_key: str,
        label_key: str,
        max_image_pixels: int,
        policy: ValidationConfig,
    ):
        super().__init__(
            ImageValidatorSpec(
                examples=examples,
                schema=schema,
                labels_path=labels_path,
                image_key=image_key,
                label_key=label_key,
                max_image_pixels=max_image_pixels,
                policy=policy.model_dump_json(),
                report=types.Channel(type=ImageValidationReport),
                valid_examples=types.Channel(type=standard_artifacts.Examples),
            )
        )
