"""The pipeline: one function that wires the TFX components from the configuration.

ImportExampleGen (the newest span, or window of spans) -> ImageValidator (every image
decoded; the valid records kept)
  -> StatisticsGen -> ExampleValidator (against the curated schema: CuratedSchema)
                   -> SchemaGen (the inferred schema, for comparison)
  -> DataGate (stops the run on bad data; with spans, measures drift from the previous span)
  -> Trainer (warm-started from the blessed model of an earlier span, if so configured)
  -> Evaluator (against the latest blessed model of the same classes) -> Pusher (next version)
               -> ModelReport (comparison, most confident mistakes)

The resolvers choose what a run builds on (pipeline/resolvers.py); Kubeflow's
compiler knows only TFX's own two strategies, so on a cluster the baseline and
the warm start are the latest blessed model and the previous span's statistics
are the latest ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.dsl.components.base import base_node

from components.curated_schema import CuratedSchema, file_sha256
from components.data_gate import DataGate
from components.example_gen import import_example_gen
from components.image_validator import ImageValidationReport, ImageValidator
from components.model_report import ModelReport
from components.pusher import VersionedPusher
from components.trainer import Trainer
from imagedata.records import read_labels
from pipeline.cluster import DATA_ROOT, TRAINING_PARAMETERS, runtime_parameters, trainer_resources
from pipeline.config import PipelineConfig, is_remote
from pipeline.evaluation import make_eval_config
from pipeline.resolvers import (
    IMAGE_REPORT,
    MODEL,
    STATISTICS,
    ComparableModelStrategy,
    PreviousSpanStrategy,
    WarmStartModelStrategy,
    model_channels,
    span_settings,
)
from pipeline.spans import input_splits

TRAINER_RUN_FN = "trainer.task.run_fn"


def create_pipeline(
    config: PipelineConfig, validate_only: bool = False, on_cluster: bool = False
) -> tfx.dsl.Pipeline:
    """The whole pipeline; with `validate_only`, only ingestion and validation, up to the gate.

    `on_cluster` (Kubeflow): the settings in pipeline/cluster.py become run-time
    parameters and the Trainer's pod asks for `config.kubeflow.trainer`.
    """
    parameters = runtime_parameters(config) if on_cluster else {}
    data = _data_components(config, parameters.get(DATA_ROOT, config.data.root), on_cluster)
    components = list(data.components)
    if not validate_only:
        schedule = {name: parameters[name] for name in TRAINING_PARAMETERS if name in parameters}
        model = _model_components(config, data, schedule, on_cluster)
        if on_cluster:
            model[0].with_platform_config(trainer_resources(config.kubeflow.trainer))
        components += model
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam_pipeline_args,
    )


@dataclass(frozen=True)
class _DataComponents:
    components: list[base_node.BaseNode]
    valid_examples: tfx.dsl.Channel  # the records the image validator found good
    gate: base_node.BaseNode


def _data_components(config: PipelineConfig, input_base, on_cluster: bool) -> _DataComponents:
    data = config.data
    if not is_remote(data.schema_path) and not os.path.exists(data.schema_path):
        raise FileNotFoundError(
            f"No curated schema at {data.schema_path}: write one from the data with "
            "`imgclf make-schema` (then review it), or set data.schema_file."
        )
    example_gen = import_example_gen(
        input_base=input_base,
        input_config=tfx.proto.Input(splits=input_splits(data)),
        span=data.span,
        rolling_spans=data.rolling_spans,
    )
    curated_schema = CuratedSchema(
        schema_file=data.schema_path, sha256=file_sha256(data.schema_path)
    ).with_id("ImportSchemaGen")
    schema = curated_schema.outputs["schema"]
    image_validator = ImageValidator(
        examples=example_gen.outputs["examples"],
        schema=schema,
        labels_path=data.labels_path,
        image_key=data.image_key,
        label_key=data.label_key,
        policy=config.validation,
    )
    # Everything downstream sees only the records the image validator found good.
    valid_examples = image_validator.outputs["valid_examples"]
    statistics_gen = tfx.components.StatisticsGen(
        examples=valid_examples,
        schema=schema,
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True),
    )
    statistics = statistics_gen.outputs["statistics"]
    inferred_schema = tfx.components.SchemaGen(statistics=statistics, infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(statistics=statistics, schema=schema)
    previous_span = _previous_span(config, on_cluster) if data.has_spans else None
    data_gate = DataGate(
        statistics=statistics,
        schema=schema,
        anomalies=example_validator.outputs["anomalies"],
        image_report=image_validator.outputs["report"],
        label_key=data.label_key,
        max_label_drift=config.validation.max_label_drift,
        fail_on_warnings=config.validation.fail_on_warnings,
        max_span_label_drift=config.validation.max_span_label_drift,
        max_span_image_change=config.validation.max_span_image_change,
        fail_on_span_drift=config.validation.fail_on_span_drift,
        previous_statistics=previous_span.outputs[STATISTICS] if previous_span else None,
        previous_image_report=previous_span.outputs[IMAGE_REPORT] if previous_span else None,
    )
    return _DataComponents(
        components=[
            example_gen,
            curated_schema,
            image_validator,
            statistics_gen,
            inferred_schema,
            example_validator,
            *([previous_span] if previous_span else []),
            data_gate,
        ],
        valid_examples=valid_examples,
        gate=data_gate,
    )


def _previous_span(config: PipelineConfig, on_cluster: bool) -> tfx.dsl.Resolver:
    """The statistics and image report of the span before this run's."""
    channels = {
        STATISTICS: tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics),
        IMAGE_REPORT: tfx.dsl.Channel(type=ImageValidationReport),
    }
    if on_cluster:
        strategy = dict(strategy_class=tfx.dsl.experimental.LatestArtifactStrategy)
    else:
        strategy = dict(strategy_class=PreviousSpanStrategy, config=span_settings(config.data))
    return tfx.dsl.Resolver(**strategy, **channels).with_id("previous_span_resolver")


def _blessed_model(strategy: dict, on_cluster: bool, node_id: str) -> tfx.dsl.Resolver:
    if on_cluster:
        strategy = dict(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy)
    return tfx.dsl.Resolver(**strategy, **model_channels()).with_id(node_id)


def _model_components(
    config: PipelineConfig, data: _DataComponents, schedule: dict, on_cluster: bool
) -> list[base_node.BaseNode]:
    """Trainer first, then what evaluates and pushes its model."""
    class_names = read_labels(config.data.labels_path)
    warm_start = None
    if config.training.warm_start:
        warm_start = _blessed_model(
            dict(strategy_class=WarmStartModelStrategy, config=span_settings(config.data)),
            on_cluster,
            "warm_start_model_resolver",
        )
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=data.valid_examples,
        custom_config=config.trainer_config().model_dump(mode="json"),
        schedule=schedule,
        base_model=warm_start.outputs[MODEL] if warm_start else None,
    )
    # Nothing is trained unless the data passed: on any orchestrator, a failed gate stops here.
    trainer.add_upstream_node(data.gate)
    latest_blessed_model = _blessed_model(
        dict(strategy_class=ComparableModelStrategy, config={"class_names": class_names}),
        on_cluster,
        "latest_blessed_model_resolver",
    )
    num_classes = len(class_names)
    evaluator = tfx.components.Evaluator(
        examples=data.valid_examples,
        model=trainer.outputs["model"],
        baseline_model=latest_blessed_model.outputs["model"],
        eval_config=make_eval_config(config.evaluation, config.data, num_classes),
    )
    model_report = ModelReport(
        model=trainer.outputs["model"],
        examples=data.valid_examples,
        evaluation=evaluator.outputs["evaluation"],
        labels_path=config.data.labels_path,
        image_key=config.data.image_key,
        label_key=config.data.label_key,
        most_wrong=config.evaluation.most_wrong,
    )
    pusher = VersionedPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        serving_model_dir=config.serving_model_dir,
    ).with_id("Pusher")
    return [
        trainer,
        *([warm_start] if warm_start else []),
        latest_blessed_model,
        evaluator,
        model_report,
        pusher,
    ]
