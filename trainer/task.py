"""The Trainer's entry point: TFX calls `run_fn` with the run's files and settings."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import tensorflow as tf
from absl import logging
from tfx import v1 as tfx

from imgclf.imagedata.records import read_labels
from imgclf.settings.config import TrainerConfig
from imgclf.trainer.confidence import measured
from imgclf.trainer.data import first_records
from imgclf.trainer.distribution import (
    cluster_layout,
    is_chief,
    make_strategy,
    precision_policy,
    strategy_name,
)
from imgclf.trainer.export import SCRATCH, TRANSFER, export_model, export_tflite
from imgclf.trainer.features import CachedPhase1, cache_phase1
from imgclf.trainer.legacy_keras import keras
from imgclf.trainer.model import build_model
from imgclf.trainer.pretrain import compare_with_scratch
from imgclf.trainer.roles import Roles, training_data
from imgclf.trainer.schedule import (
    ACCURACY,
    MONITOR,
    claim_work_dir,
    combined_history,
    kept_epoch,
    train_two_phases,
)
from imgclf.trainer.warm_start import start_from
from imgclf.trainer.warmup import warmup_requests, write_warmup_requests

# Under the Trainer's model_run output: checkpoints that let a restarted
# Trainer resume, removed once the model is exported.
WORK_DIR = "work"
FEATURE_CACHE_DIR = "feature_cache"
# Set by Vertex AI in a CustomJob connected to a TensorBoard instance.
VERTEX_TENSORBOARD_DIR = "AIP_TENSORBOARD_LOG_DIR"


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = TrainerConfig.model_validate(fn_args.custom_config)
    # With the Tuner in the pipeline: the best values its search found.
    tuned = (fn_args.hyperparameters or {}).get("values", {})
    config = config.tuned(tuned)
    # First, before TensorFlow runs an op (MultiWorkerMirroredStrategy needs that), and
    # once: both phases build, compile and train in this strategy's scope.
    strategy = make_strategy(config.training.cpu_replicas)
    class_names = read_labels(config.data.labels_path)
    keras.utils.set_random_seed(config.training.seed)
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy(
        precision_policy(config.training.mixed_precision, has_gpu)
    )
    try:
        _train_and_export(fn_args, config, strategy, class_names, tuned)
    finally:
        # The policy is global: leave none behind for whatever runs next in this process.
        keras.mixed_precision.set_global_policy("float32")


def run_identity(fn_args: tfx.components.FnArgs, config: TrainerConfig) -> str:
    """A digest of what this run trains on and how: its settings, start, and input files.

    The files by path, size and modification time: a path alone can come back
    with other data (a metadata store reset makes TFX reuse output folders).
    """
    files = sorted(
        path
        for pattern in (*fn_args.train_files, *fn_args.eval_files)
        for path in tf.io.gfile.glob(pattern)
    )
    stats = [tf.io.gfile.stat(path) for path in files]
    described = {
        "config": config.model_dump(mode="json"),
        "base_model": fn_args.base_model,
        "files": [(path, stat.length, stat.mtime_nsec) for path, stat in zip(files, stats)],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _train_and_export(
    fn_args, config: TrainerConfig, strategy, class_names: list[str], tuned: dict
) -> None:
    # Every replica on every worker takes a batch of batch_size at each step.
    global_batch_size = config.training.batch_size * strategy.num_replicas_in_sync
    data = training_data(fn_args, config, global_batch_size, len(class_names))
    roles, train, evals, class_weight = data.roles, data.train, data.validation, data.class_weight

    with strategy.scope():
        model = build_model(
            config.model,
            num_classes=len(class_names),
            batch_norm_learns=config.training.fine_tune_batch_norm,
        )
        # With warm start on, the pipeline gives the last blessed model of an earlier span.
        start = start_from(
            model,
            fn_args.base_model,
            class_names,
            enabled=bool(config.training.warm_start),
            pretrained=config.model.weights != "none",
        )
    work_dir = os.path.join(fn_args.model_run_dir, WORK_DIR)
    claim_work_dir(work_dir, run_identity(fn_args, config), writer=is_chief())

    def cache_phase1_features() -> CachedPhase1:
        return cache_phase1(
            model,
            roles.train_files,
            roles.validation_files,
            config.data,
            config.training,
            train,
            evals,
            cache_dir=os.path.join(work_dir, FEATURE_CACHE_DIR),
            train_part=roles.train_part,
            eval_part=roles.validation_part,
        )

    phases = train_two_phases(
        model,
        train,
        evals,
        config.training,
        strategy,
        work_dir,
        log_dirs=tensorboard_dirs(fn_args.model_run_dir),
        cache_phase1=cache_phase1_features if config.training.uses_feature_cache else None,
        class_weight=class_weight,
    )
    phase_records = [phase.to_dict() for phase in phases]
    transfer = kept_epoch(phase_records)
    exported, accuracy, scratch = model, transfer[ACCURACY], None
    if config.training.compare_scratch:
        with strategy.scope():
            scratch_model, scratch = compare_with_scratch(
                config.model,
                len(class_names),
                train,
                evals,
                config.training,
                epochs=sum(len(phase.epochs) for phase in phases),
                work_dir=work_dir,
            )
        scratch["validation"] = measured(scratch["validation_accuracy"], evals.examples)
        # Never below from-scratch when it was measured: the better on validation is served.
        if scratch["score"] > transfer[MONITOR]:
            exported, accuracy = scratch_model, scratch["validation_accuracy"]
    summary = {
        **_setting_summary(config, strategy, class_names, global_batch_size),
        "start": start.to_dict(),
        "roles": roles.describe(),
        "train_examples": train.examples,
        "validation_examples": evals.examples,
        "train_class_counts": data.class_counts,
        "class_weight": class_weight,
        "phases": phase_records,
        "history": combined_history(phases),
        "exported": TRANSFER if exported is model else SCRATCH,
        # What the validation split can tell: the exported weights' accuracy, its count, its
        # interval.
        "validation": measured(accuracy, evals.examples),
        "scratch": scratch,
        "tuned": tuned or None,
    }
    _export(fn_args, config, exported, class_names, summary)
    if is_chief():
        _add_serving_extras(fn_args, config, exported, class_names, roles)
        tf.io.gfile.rmtree(work_dir)
        logging.info("Exported the model to %s", fn_args.serving_model_dir)


def tensorboard_dirs(model_run_dir: str) -> list[str]:
    """The model run, where TFX keeps the Trainer's logs; and Vertex AI's folder when it gives
    one (kubeflow/custom_job.py: a CustomJob connected to a TensorBoard instance)."""
    vertex = os.environ.get(VERTEX_TENSORBOARD_DIR)
    return [model_run_dir, vertex] if vertex else [model_run_dir]


def _setting_summary(
    config: TrainerConfig, strategy, class_names: list[str], global_batch_size: int
) -> dict:
    """What the model was trained as and on what machines, for training_summary.json."""
    layout = cluster_layout()
    return {
        "base_model": config.model.base_model,
        "weights": config.model.weights,
        "image_size": config.model.image_size,
        "class_names": class_names,
        "strategy": strategy_name(strategy),
        "num_replicas": strategy.num_replicas_in_sync,
        "workers": layout["workers"],
        "replicas_per_worker": strategy.num_replicas_in_sync // layout["workers"],
        "cluster": layout["machines"],
        "global_batch_size": global_batch_size,
        "precision": keras.mixed_precision.global_policy().name,
    }


def _export(
    fn_args, config: TrainerConfig, model: keras.Model, class_names: list[str], summary: dict
) -> None:
    """Every worker saves, as saving takes part in collective ops; only the chief's is kept."""
    with tempfile.TemporaryDirectory() as elsewhere:
        export_model(
            model,
            fn_args.serving_model_dir if is_chief() else elsewhere,
            class_names,
            config.model.image_size,
            config.data.image_key,
            summary,
            config.data.max_image_pixels,
        )


def _add_serving_extras(
    fn_args, config: TrainerConfig, model, class_names: list[str], roles: Roles
) -> None:
    """What the export carries for serving: warmup requests from validation images, and TFLite."""
    serving = config.serving
    if serving.warmup_images:
        examples = first_records(
            roles.validation_files, serving.warmup_images, roles.validation_part
        )
        requests = warmup_requests(examples, config.data.image_key)
        write_warmup_requests(fn_args.serving_model_dir, requests)
    if serving.tflite:
        export_tflite(model, fn_args.serving_model_dir, class_names)
