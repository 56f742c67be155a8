"""SpanResolver: ExampleGen's driver as a task of its own, for Kubeflow.

Open-source KFP never runs a container's `lifecycle.preCacheCheck`, where TFX
puts ExampleGen's driver, so `{SPAN}` patterns would reach the executor
unfilled. This task runs on every run (its caching is off in the compiled
spec), finds the span(s) to read and the data's fingerprint, and hands them to
ExampleGen as parameters (components/example_gen.py), which puts them in
ExampleGen's cache key on every backend.
"""

from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from imgclf.components.example_gen import resolve_input
from imgclf.settings.names import NEWEST_SPAN


@tfx.dsl.components.component
def SpanResolver(
    input_base: tfx.dsl.components.Parameter[str],
    patterns: tfx.dsl.components.Parameter[str],
    backfill_span: tfx.dsl.components.Parameter[int],
    rolling_spans: tfx.dsl.components.Parameter[int],
    span_complete_marker: tfx.dsl.components.Parameter[str],
) -> tfx.dsl.components.OutputDict(input_config=str, span=int, spans=str, input_fingerprint=str):
    """`patterns`: the input config, its split patterns with {SPAN}.

    `backfill_span`: the span to read, or NEWEST_SPAN.
    `span_complete_marker`: a span is read once its folder holds this file ('': always).
    """
    templates = example_gen_pb2.Input()
    proto_utils.json_to_proto(patterns, templates)
    return resolve_input(
        input_base,
        templates,
        None if backfill_span == NEWEST_SPAN else backfill_span,
        rolling_spans,
        span_complete_marker,
    )
