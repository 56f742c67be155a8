"""The Trainer's entry point: TFX calls `run_fn` with the run's files and settings."""

from __future__ import annotations

import tf_keras as keras
from absl import logging
from tfx import v1 as tfx

from imagedata.records import read_labels
from pipeline.config import TrainerConfig
from trainer.data import eval_dataset, train_dataset
from trainer.distribution import make_strategy
from trainer.export import export_model
from trainer.model import build_model
from trainer.schedule import train_two_phases


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    config = TrainerConfig.model_validate(fn_args.custom_config)
    class_names = read_labels(config.data.labels_path)
    keras.utils.set_random_seed(config.training.seed)

    # One strategy for the whole run: both phases build, compile and train in its scope.
    strategy = make_strategy(config.training.cpu_replicas)
    global_batch_size = config.training.batch_size * strategy.num_replicas_in_sync
    image_size = config.model.image_size
    train_data = train_dataset(
        fn_args.train_files, config.data, image_size, global_batch_size, config.training
    )
    eval_data = eval_dataset(fn_args.eval_files, config.data, image_size, global_batch_size)

    with strategy.scope():
        model = build_model(config.model, num_classes=len(class_names))
    phases = train_two_phases(model, train_data, eval_data, config.training, strategy)

    summary = {
        "base_model": config.model.base_model,
        "weights": config.model.weights,
        "image_size": image_size,
        "class_names": class_names,
        "strategy": type(strategy).__name__,
        "num_replicas": strategy.num_replicas_in_sync,
        "global_batch_size": global_batch_size,
        "phases": [phase.to_dict() for phase in phases],
    }
    export_model(
        model, fn_args.serving_model_dir, class_names, image_size, config.data.image_key, summary
    )
    logging.info("Exported the model to %s", fn_args.serving_model_dir)
