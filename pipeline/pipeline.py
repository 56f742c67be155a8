"""The pipeline: one function that wires the TFX components from the configuration.

[SpanResolver, on Kubeflow] -> ImportExampleGen (the newest span, or window of spans)
  -> ImageValidator (every image decoded; the valid records kept)
  -> StatisticsGen -> ExampleValidator (against the curated schema: CuratedSchema)
                   -> SchemaGen (the inferred schema, for comparison)
  [ServingHistory, on Kubeflow] (the served versions a run builds on: baseline,
                                 warm start, previous span's profile; found when
                                 the pipeline is built for a local run)
  -> DataReport (the data's web page) -> DataGate (stops the run on bad data; with spans,
                                                 measures drift from the served span)
  -> [Tuner, with tuning.enabled: KerasTuner over learning rates, unfrozen share, dropout]
  -> Trainer (warm-started from the served model of an earlier span, if so configured)
  -> Evaluator (against the newest served model of the same classes) -> Pusher (next version)
  -> ServingCheck (loaded as a server would, warmup requests answered) -> Pusher
     (or TFX's InfraValidator with TF Serving, or none: serving.check)
  -> ModelReport (the web page of it all, and what the pipeline consoles render)
  [ModelRegistry, on Vertex AI with kubeflow.registry: the served versions in Vertex AI
   Model Registry, the newest rolled out to an endpoint]
  [KServeRollout, on open-source KFP with kubeflow.kserve: the InferenceService manifest of
   the newest version, applied with kubeflow.kserve.apply]

What a run builds on is found in the serving folder by the same code on every
orchestrator (modelstore/history.py), not by resolver executors, which
open-source KFP does not run. On Kubeflow, where ExampleGen's driver does not
run, a SpanResolver task finds the span and the data's fingerprint.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.dsl.components.base import base_node
from tfx.utils import proto_utils

from imgclf.components.curated_schema import CuratedSchema, file_sha256
from imgclf.components.data_gate import DataGate
from imgclf.components.data_report import DataReport
from imgclf.components.evaluation import make_eval_config
from imgclf.components.evaluator import Evaluator
from imgclf.components.example_gen import import_example_gen
from imgclf.components.image_validator import ImageValidator
from imgclf.components.kserve_rollout import KServeRollout
from imgclf.components.model_report import ModelReport
from imgclf.components.pusher import VersionedPusher
from imgclf.components.registry import ModelRegistry
from imgclf.components.serving_check import ServingCheck
from imgclf.components.serving_history import ServingHistory
from imgclf.components.span_resolver import SpanResolver
from imgclf.components.trainer import Trainer
from imgclf.imagedata.records import read_labels
from imgclf.imagedata.spans import input_splits, newest_span
from imgclf.modelstore.history import find_versions
from imgclf.pipeline.cluster import ask_for_resources, runtime_parameters
from imgclf.settings import names
from imgclf.settings.base import ConfigError, is_remote
from imgclf.settings.config import PipelineConfig
from imgclf.trainer.export import SERVING_DEFAULT

TRAINER_RUN_FN = "imgclf.trainer.task.run_fn"
TUNER_FN = "imgclf.trainer.tuning.tuner_fn"


def create_pipeline(
    config: PipelineConfig, validate_only: bool = False, on_cluster: bool = False
) -> tfx.dsl.Pipeline:
    """The whole pipeline; with `validate_only`, only ingestion and validation, up to the gate.

    `on_cluster` (Kubeflow): the settings in pipeline/cluster.py become run-time
    parameters and the tasks' pods ask for their resources (`config.kubeflow`).
    """
    parameters = runtime_parameters(config) if on_cluster else {}
    # Read once per build: every component is given the same classes.
    class_names = read_labels(config.data.labels_path)
    data = _data_components(config, class_names, parameters, on_cluster)
    components = list(data.components)
    if not validate_only:
        schedule = {
            name: parameters[name] for name in names.TRAINING_PARAMETERS if name in parameters
        }
        model = _model_components(config, data, len(class_names), schedule)
        if on_cluster and config.kubeflow.registry.model:
            model.append(_model_registry(config, model))
        if on_cluster and config.kubeflow.kserve.name:
            model.append(_kserve_rollout(config, model))
        if not on_cluster:
            _refuse_workers_here(config)
        components += model
    if on_cluster:
        ask_for_resources(components, config.kubeflow)
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path
        ),
        beam_pipeline_args=config.beam_arguments(),
    )


def _refuse_workers_here(config: PipelineConfig) -> None:
    workers = config.kubeflow.trainer.workers
    if workers > 1:
        raise ConfigError(
            f"kubeflow.trainer.workers is {workers}, but a run here trains in one process: "
            "nothing here starts workers. The setting is for `imgclf kubeflow`; set it to 1 "
            "for a local run (--set kubeflow.trainer.workers=1)."
        )


def _ingestion(
    config: PipelineConfig, parameters: dict, span: int | None, on_cluster: bool
) -> tuple[base_node.BaseNode | None, base_node.BaseNode]:
    """[SpanResolver, on Kubeflow, which finds the span at run time], ImportExampleGen."""
    data = config.data
    input_base = parameters.get(names.DATA_ROOT_PARAMETER, data.root)
    input_config = tfx.proto.Input(splits=input_splits(data))
    span_resolver = None
    if on_cluster:
        span_resolver = SpanResolver(
            input_base=input_base,
            patterns=proto_utils.proto_to_json(input_config),
            backfill_span=parameters[names.SPAN_PARAMETER],
            rolling_spans=data.rolling_spans,
            span_complete_marker=data.span_complete_marker,
        ).with_id(names.SPAN_RESOLVER)
    example_gen = import_example_gen(
        input_base=input_base,
        input_config=input_config,
        span=span if data.has_spans and not on_cluster else data.span,
        rolling_spans=data.rolling_spans,
        resolved=span_resolver,
    )
    return span_resolver, example_gen


def _served_versions(
    config: PipelineConfig,
    class_names: list[str],
    example_gen: base_node.BaseNode,
    span: int | None,
    on_cluster: bool,
) -> tuple[base_node.BaseNode | None, dict]:
    """The versions a run builds on (baseline, warm start, previous span's): read from the
    serving folder now for a run here; on Kubeflow, by a ServingHistory task, whose outputs
    are the placeholders returned."""
    warm_start = bool(config.training.warm_start)
    if not on_cluster:
        return None, find_versions(config.serving_model_dir, class_names, span, warm_start)
    history = ServingHistory(
        examples=example_gen.outputs["examples"],
        serving_model_dir=config.serving_model_dir,
        push_records_dir=config.push_records_dir,
        allow_empty_serving_folder=bool(config.evaluation.allow_empty_serving_folder),
        class_names=json.dumps(class_names),
        warm_start=warm_start,
    ).with_id(names.SERVING_HISTORY)
    return history, {key: history.outputs[key].future()[0].value for key in history.outputs}


@dataclass(frozen=True)
class _DataComponents:
    components: list[base_node.BaseNode]
    valid_examples: tfx.dsl.Channel  # the records the image validator found good
    statistics: tfx.dsl.Channel
    image_report: tfx.dsl.Channel
    served: dict  # ServingHistory's versions: values, or placeholders of its outputs
    gate: base_node.BaseNode


def _data_components(
    config: PipelineConfig, class_names: list[str], parameters: dict, on_cluster: bool
) -> _DataComponents:
    """`parameters`: the run-time parameters on Kubeflow; none locally.

    Built for a run here, the span and what is served are read now; on Kubeflow,
    by the SpanResolver and ServingHistory tasks when the run gets there.
    """
    data = config.data
    if not is_remote(data.schema_path) and not os.path.exists(data.schema_path):
        raise FileNotFoundError(
            f"No curated schema at {data.schema_path}: write one from the data with "
            "`imgclf make-schema` (then review it), or set data.schema_file."
        )
    # Complete spans only: TFX's driver would take the newest that matches.
    span = None if on_cluster else newest_span(data).number
    span_resolver, example_gen = _ingestion(config, parameters, span, on_cluster)
    curated_schema = CuratedSchema(
        schema_file=data.schema_path, sha256=file_sha256(data.schema_path)
    ).with_id(names.CURATED_SCHEMA)
    schema = curated_schema.outputs["schema"]
    image_validator = ImageValidator(
        examples=example_gen.outputs["examples"],
        schema=schema,
        labels_path=data.labels_path,
        image_key=data.image_key,
        label_key=data.label_key,
        max_image_pixels=data.max_image_pixels,
        policy=config.validation,
    ).with_id(names.IMAGE_VALIDATOR)
    # Everything downstream sees only the records the image validator found good.
    valid_examples = image_validator.outputs["valid_examples"]
    statistics_gen = tfx.components.StatisticsGen(
        examples=valid_examples,
        schema=schema,
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True),
    ).with_id(names.STATISTICS_GEN)
    statistics = statistics_gen.outputs["statistics"]
    inferred_schema = tfx.components.SchemaGen(
        statistics=statistics, infer_feature_shape=True
    ).with_id(names.INFERRED_SCHEMA)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics, schema=schema
    ).with_id(names.EXAMPLE_VALIDATOR)
    history, served = _served_versions(config, class_names, example_gen, span, on_cluster)
    # The DataReport shows what the DataGate decides on: the same inputs and settings.
    assessed = dict(
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
        serving_model_dir=config.serving_model_dir,
        previous_version=served[names.PREVIOUS_VERSION],
    )
    data_report = DataReport(**assessed).with_id(names.DATA_REPORT)
    data_gate = DataGate(**assessed).with_id(names.DATA_GATE)
    # The page is written before the gate can stop the run.
    data_gate.add_upstream_node(data_report)
    return _DataComponents(
        components=[
            *([span_resolver] if span_resolver else []),
            example_gen,
            curated_schema,
            image_validator,
            statistics_gen,
            inferred_schema,
            example_validator,
            *([history] if history else []),
            data_report,
            data_gate,
        ],
        valid_examples=valid_examples,
        statistics=statistics,
        image_report=image_validator.outputs["report"],
        served=served,
        gate=data_gate,
    )


def _model_components(
    config: PipelineConfig, data: _DataComponents, num_classes: int, schedule: dict
) -> list[base_node.BaseNode]:
    """[Tuner], the Trainer, then what evaluates and pushes its model."""
    custom_config = config.trainer_config().model_dump(mode="json")
    validation_split = (
        names.VALIDATION_SPLIT if config.data.validation_pattern else names.TRAIN_SPLIT
    )
    tuner = None
    if config.tuning.enabled:
        tuner = tfx.components.Tuner(
            tuner_fn=TUNER_FN,
            examples=data.valid_examples,
            train_args=tfx.proto.TrainArgs(splits=[names.TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[validation_split]),
            custom_config=custom_config,
        ).with_id(names.TUNER)
    trainer = Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=data.valid_examples,
        custom_config=custom_config,
        schedule=schedule,
        serving_model_dir=config.serving_model_dir,
        warm_start_version=data.served[names.WARM_START_VERSION],
        validation_split=validation_split,
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
    ).with_id(names.TRAINER)
    # Nothing is tuned or trained unless the data passed: on any orchestrator, a failed
    # gate stops here.
    for node in (tuner, trainer):
        if node:
            node.add_upstream_node(data.gate)
    evaluator = Evaluator(
        examples=data.valid_examples,
        model=trainer.outputs["model"],
        serving_model_dir=config.serving_model_dir,
        baseline_version=data.served[names.BASELINE_VERSION],
        eval_config=make_eval_config(config.evaluation, config.data, num_classes),
    ).with_id(names.EVALUATOR)
    serving_check = _serving_check(config, trainer, data)
    pusher = VersionedPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"] if serving_check else None,
        statistics=data.statistics,
        image_report=data.image_report,
        serving_model_dir=config.serving_model_dir,
        push_records_dir=config.push_records_dir,
        allow_class_change=int(config.evaluation.allow_class_change),
    ).with_id(names.PUSHER)
    model_report = ModelReport(
        model=trainer.outputs["model"],
        examples=data.valid_examples,
        evaluation=evaluator.outputs["evaluation"],
        image_report=data.image_report,
        serving_check=serving_check.outputs["blessing"] if serving_check else None,
        pushed_model=pusher.outputs["pushed_model"],
        labels_path=config.data.labels_path,
        image_key=config.data.image_key,
        label_key=config.data.label_key,
        most_wrong=config.evaluation.most_wrong,
    ).with_id(names.MODEL_REPORT)
    checks = [serving_check] if serving_check else []
    tuners = [tuner] if tuner else []
    return [*tuners, trainer, evaluator, *checks, pusher, model_report]


def _model_registry(config: PipelineConfig, model: list[base_node.BaseNode]) -> base_node.BaseNode:
    """After the Pusher: the served versions in Vertex AI Model Registry (kubeflow.registry)."""
    pusher = next(node for node in model if node.id == names.PUSHER)
    cluster = config.kubeflow
    return ModelRegistry(
        pushed_model=pusher.outputs["pushed_model"],
        serving_model_dir=config.serving_model_dir,
        project=cluster.project,
        region=cluster.region,
        api_endpoint=cluster.api_endpoint,
        registry=cluster.registry.model_dump_json(),
    ).with_id(names.MODEL_REGISTRY)


def _kserve_rollout(config: PipelineConfig, model: list[base_node.BaseNode]) -> base_node.BaseNode:
    """After the Pusher: the newest served version on KServe (kubeflow.kserve)."""
    pusher = next(node for node in model if node.id == names.PUSHER)
    return KServeRollout(
        pushed_model=pusher.outputs["pushed_model"],
        serving_model_dir=config.serving_model_dir,
        namespace=config.kubeflow.namespace,
        kserve=config.kubeflow.kserve.model_dump_json(),
    ).with_id(names.KSERVE_ROLLOUT)


def _serving_check(
    config: PipelineConfig, trainer: base_node.BaseNode, data: _DataComponents
) -> base_node.BaseNode | None:
    """What stands between the Trainer's model and the Pusher, as serving.check says."""
    serving = config.serving
    model = trainer.outputs["model"]
    if serving.check == "local":
        return ServingCheck(
            model=model,
            timeout_seconds=serving.check_timeout_seconds,
            max_latency_ms=serving.max_latency_ms or 0.0,
        ).with_id(names.SERVING_CHECK)
    if serving.check == "infra_validator":
        # TF Serving itself, in the local Docker (kubeflow/cluster.py says why not there).
        return tfx.components.InfraValidator(
            model=model,
            examples=data.valid_examples,
            serving_spec=tfx.proto.ServingSpec(
                tensorflow_serving=tfx.proto.TensorFlowServing(
                    image_name=serving.serving_image, tags=[serving.serving_image_tag]
                ),
                local_docker=tfx.proto.LocalDockerConfig(),
            ),
            request_spec=tfx.proto.RequestSpec(
                tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                    signature_names=[SERVING_DEFAULT]
                ),
            ),
        ).with_id(names.SERVING_CHECK)
    return None
