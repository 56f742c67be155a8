"""Ingestion: ImportExampleGen's job, with spans, and errors that name the file and record at fault.

TFX's ImportExampleGen reads TFRecord files through Beam's ReadFromTFRecord,
which picks the compression from the file name and, on a corrupted record,
fails with a dump of the record's bytes and no file name. This executor reads
each file itself: a GZIP file not named *.gz (or the reverse) and a record
with a bad checksum stop the run with the file's path and the record's index;
a file with no records is logged by name and adds nothing.

Spans: TFX's driver reads one span, the newest or a static range's (a
backfill). The driver here also reads a rolling window of the newest
`rolling_spans` spans (an execution property): a window's split patterns reach
the executor as one pattern per span, a line each. The Examples artifact
lists the spans it holds in its `spans` custom property.

On Kubeflow no driver runs: open-source KFP never runs a container's
`lifecycle.preCacheCheck`, where TFX puts it (nothing under kubeflow/pipelines'
backend/src/v2 reads it). There a SpanResolver task, run on every run, finds the
span(s) and the data's fingerprint, and ExampleGen takes them as parameters: KFP's
cache key covers parameter values (backend/src/v2/cacheutils/cache.go), so new
data is ingested and unchanged data is reused.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import apache_beam as beam
from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.example_gen import utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.example_gen.driver import FileBasedDriver
from tfx.dsl.components.base import base_beam_component, base_node, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import proto_utils

from imgclf.imagedata.records import list_files, read_tfrecord_file
from imgclf.imagedata.spans import NoSpanError, fill_span, find_span, static_range, window
from imgclf.settings.names import EXAMPLE_GEN, SPANS_PROPERTY

ROLLING_SPANS = "rolling_spans"
# Between the patterns of a window's spans; a glob pattern holds no line break.
PATTERN_SEPARATOR = "\n"


def span_of(artifact: types.Artifact) -> int:
    """The span of ExampleGen's output (a custom property) or of what was made from it."""
    if artifact.has_custom_property(utils.SPAN_PROPERTY_NAME):
        return artifact.get_int_custom_property(utils.SPAN_PROPERTY_NAME)
    return artifact.span


class SpanDriver(FileBasedDriver):
    """TFX's driver, plus a rolling window of the newest spans."""

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        templates = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], templates
        )
        resolved = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        newest = resolved[utils.SPAN_PROPERTY_NAME]
        size = exec_properties.get(ROLLING_SPANS) or 1
        input_base = resolved[standard_component_specs.INPUT_BASE_KEY]
        spans = window(input_base, templates.splits, newest, size) if size > 1 else []
        if len(spans) > 1:
            resolved[standard_component_specs.INPUT_CONFIG_KEY] = _window_config(templates, spans)
            resolved[utils.FINGERPRINT_PROPERTY_NAME] = "\n".join(s.fingerprint for s in spans)
        numbers = [s.number for s in spans] or [newest]
        logging.info("Reading span(s) %s of %s.", numbers, input_base)
        resolved[SPANS_PROPERTY] = ",".join(map(str, numbers))
        return resolved

    def run(self, execution_info):
        result = super().run(execution_info)
        spans = result.exec_properties[SPANS_PROPERTY].string_value
        for artifact in result.output_artifacts[standard_component_specs.EXAMPLES_KEY].artifacts:
            artifact.custom_properties[SPANS_PROPERTY].string_value = spans
        return result


def resolve_input(
    input_base: str,
    templates: example_gen_pb2.Input,
    span: int | None,
    rolling_spans: int,
    marker: str = "",
) -> dict[str, Any]:
    """What a driver resolves: the filled input config, the spans and the data's fingerprint.

    With a `marker`, only spans whose folder holds it (imagedata/spans.py)."""
    newest = find_span(input_base, list(templates.splits), span, marker)
    spans = window(input_base, templates.splits, newest.number, rolling_spans, marker)
    if newest.number not in [found.number for found in spans]:
        raise NoSpanError(f"Span {newest.number} vanished from {input_base} while being read.")
    logging.info("Reading span(s) %s of %s.", [found.number for found in spans], input_base)
    return {
        standard_component_specs.INPUT_CONFIG_KEY: _window_config(templates, spans),
        utils.SPAN_PROPERTY_NAME: newest.number,
        SPANS_PROPERTY: ",".join(str(found.number) for found in spans),
        utils.FINGERPRINT_PROPERTY_NAME: "\n".join(found.fingerprint for found in spans),
    }


def _window_config(templates: example_gen_pb2.Input, spans) -> str:
    """The input config whose split patterns list each span's pattern, a line each."""
    window_config = example_gen_pb2.Input()
    window_config.CopyFrom(templates)
    for split in window_config.splits:
        split.pattern = PATTERN_SEPARATOR.join(fill_span(split.pattern, span) for span in spans)
    return proto_utils.proto_to_json(window_config)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _ReadTFRecordFiles(
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.PCollection:
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = [
        path
        for pattern in split_pattern.split(PATTERN_SEPARATOR)
        for path in list_files(os.path.join(input_base, pattern))
    ]
    return (
        pipeline
        | "ListFiles" >> beam.Create(files)
        | "Distribute" >> beam.Reshuffle()
        | "ReadRecords" >> beam.FlatMap(read_tfrecord_file)
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ReadTFRecordFiles

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        # On Kubeflow the SpanResolver's findings arrive as properties (as text: TFX
        # types a dynamic parameter STRING); locally the driver's, the same values.
        if not exec_properties.get(SPANS_PROPERTY):
            return
        for examples in output_dict[standard_component_specs.EXAMPLES_KEY]:
            examples.span = int(exec_properties[utils.SPAN_PROPERTY_NAME])
            examples.set_string_custom_property(SPANS_PROPERTY, exec_properties[SPANS_PROPERTY])
            examples.set_string_custom_property(
                utils.FINGERPRINT_PROPERTY_NAME, exec_properties[utils.FINGERPRINT_PROPERTY_NAME]
            )


class SpanExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS: ClassVar[dict] = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        ROLLING_SPANS: ExecutionParameter(type=int, optional=True),
        # From a SpanResolver (Kubeflow), in its cache key; locally the driver sets them.
        utils.SPAN_PROPERTY_NAME: ExecutionParameter(type=int, optional=True),
        SPANS_PROPERTY: ExecutionParameter(type=str, optional=True),
        utils.FINGERPRINT_PROPERTY_NAME: ExecutionParameter(type=str, optional=True),
    }


class SpanExampleGen(FileBasedExampleGen):
    """A FileBasedExampleGen (so that the Kubeflow compiler knows it) with SpanDriver."""

    SPEC_CLASS = SpanExampleGenSpec
    DRIVER_CLASS = SpanDriver

    def __init__(
        self,
        input_base,
        input_config: tfx.proto.Input,
        custom_executor_spec: executor_spec.ExecutorSpec,
        span: int | None = None,
        rolling_spans: int = 1,
        resolved: base_node.BaseNode | None = None,
    ):
        """Reads the newest span, or `span`, and with `rolling_spans` the ones before it.

        `resolved`: a SpanResolver that found them (on Kubeflow, where no driver runs).
        """
        found = {}
        if resolved is not None:
            found = {key: channel.future()[0].value for key, channel in resolved.outputs.items()}
        spec = SpanExampleGenSpec(
            input_base=input_base,
            input_config=found.pop(standard_component_specs.INPUT_CONFIG_KEY, input_config),
            range_config=static_range(span) if span is not None and not resolved else None,
            output_config=utils.make_default_output_config(input_config),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            examples=types.Channel(type=standard_artifacts.Examples),
            rolling_spans=rolling_spans if not resolved else None,
            **found,
        )
        base_beam_component.BaseBeamComponent.__init__(
            self, spec=spec, custom_executor_spec=custom_executor_spec
        )


def import_example_gen(
    input_base: str,
    input_config: tfx.proto.Input,
    span: int | None = None,
    rolling_spans: int = 1,
    resolved: base_node.BaseNode | None = None,
) -> FileBasedExampleGen:
    """An ExampleGen over TFRecord files of tf.Examples, reading them with this executor."""
    return SpanExampleGen(
        input_base=input_base,
        input_config=input_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        span=span,
        rolling_spans=rolling_spans,
        resolved=resolved,
    ).with_id(EXAMPLE_GEN)
