"""TFX's Trainer, with the training schedule settable per run, and workers that train alongside.

The trainer module reads its settings from `custom_config`, one JSON string
fixed when the pipeline is compiled. This Trainer also takes the epochs and
learning rates of both phases as execution properties, which can be runtime
parameters on Kubeflow; the executor writes the ones that are set over
`custom_config`'s training section before TFX's executor calls `run_fn`.

In a multi-worker job every replica runs this executor. TFX 1.16's own
fails a replica that leaves no model behind (its `_is_chief` is never
called), so non-chief workers would race the chief's export: here they run
`run_fn` and stop, and only the chief exports and describes the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from absl import logging
from tfx import v1 as tfx
from tfx.components.example_gen.utils import SPAN_PROPERTY_NAME
from tfx.components.trainer.executor import GenericExecutor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, path_utils

from imgclf.components.example_gen import span_of
from imgclf.components.key_figure import record_key_figure
from imgclf.imagedata.records import read_labels
from imgclf.settings.config import TrainerConfig
from imgclf.settings.names import (
    CLASS_NAMES_PROPERTY,
    NO_VERSION,
    SERVING_MODEL_DIR,
    TRAIN_SPLIT,
    TRAINER,
    TRAINING_PARAMETERS,
    WARM_START_VERSION,
)
from imgclf.trainer.distribution import is_chief
from imgclf.trainer.export import SCRATCH, read_summary
from imgclf.trainer.schedule import kept_accuracy

CUSTOM_CONFIG = standard_component_specs.CUSTOM_CONFIG_KEY
EXAMPLES = standard_component_specs.EXAMPLES_KEY
MODEL = standard_component_specs.MODEL_KEY


class TrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS: ClassVar[dict] = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        **{
            name: ExecutionParameter(type=ptype, optional=True)
            for name, ptype in TRAINING_PARAMETERS.items()
        },
        # The served version to warm-start from (ServingHistory's), NO_VERSION for none.
        WARM_START_VERSION: ExecutionParameter(type=int, optional=True),
        SERVING_MODEL_DIR: ExecutionParameter(type=str, optional=True),
    }


def apply_overrides(exec_properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties TFX's executor expects, the set overrides merged into custom_config."""
    properties = dict(exec_properties)
    custom_config = json.loads(properties[CUSTOM_CONFIG])
    for name in TRAINING_PARAMETERS:
        value = properties.pop(name, None)
        if value is not None:
            custom_config["training"][name] = value
    properties[CUSTOM_CONFIG] = json.dumps(custom_config)
    return properties


class Executor(GenericExecutor):
    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        """TFX's FnArgs; `base_model` is the served version to warm-start from, if any."""
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        version = int(exec_properties.get(WARM_START_VERSION, NO_VERSION))
        if version != NO_VERSION:
            fn_args.base_model = os.path.join(exec_properties[SERVING_MODEL_DIR], str(version))
        return fn_args

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        properties = apply_overrides(exec_properties)
        if not is_chief():
            # Another worker of a multi-worker job: it trains in step with the chief and
            # exports to scratch. TFX's check that a model was written, and the Model's
            # properties below, are the chief's: it alone writes the model output.
            run_fn = udf_utils.get_fn(properties, "run_fn")
            run_fn(self._GetFnArgs(input_dict, output_dict, properties))
            logging.info("Worker done; the chief exports the model.")
            return
        super().Do(input_dict, output_dict, properties)
        # What the Pusher records of each version: the span trained on and the classes.
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES])
        model = artifact_utils.get_single_instance(output_dict[MODEL])
        model.set_int_custom_property(SPAN_PROPERTY_NAME, span_of(examples))
        labels_path = TrainerConfig.model_validate_json(properties[CUSTOM_CONFIG]).data.labels_path
        model.set_string_custom_property(CLASS_NAMES_PROPERTY, json.dumps(read_labels(labels_path)))
        summary = read_summary(path_utils.serving_model_path(model.uri))
        record_key_figure(model, TRAINER, _key_figure(summary))


def _key_figure(summary: dict) -> str:
    """The exported weights' validation accuracy, and the epochs trained."""
    phases = summary["phases"]
    epochs = sum(len(phase["epochs"]) for phase in phases)
    figure = f"validation accuracy {summary['validation']['accuracy']:.3f} after {epochs} epochs"
    if summary["exported"] == SCRATCH:
        return figure + f" from random weights (from the pretrained: {kept_accuracy(phases):.3f})"
    scratch = summary.get("scratch")
    if scratch:
        figure += f" (from scratch: {scratch['validation_accuracy']:.3f})"
    return figure


class Trainer(base_component.BaseComponent):
    """Trains with `run_fn`; outputs `model` and `model_run` like TFX's Trainer."""

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: tfx.dsl.Channel,
        run_fn: str,
        custom_config: Mapping[str, Any],
        schedule: Mapping[str, Any] | None = None,
        serving_model_dir: str | None = None,
        warm_start_version: Any = None,
        validation_split: str = TRAIN_SPLIT,
        hyperparameters: tfx.dsl.Channel | None = None,
    ):
        """`schedule` maps names in TRAINING_PARAMETERS to values or RuntimeParameters.

        `validation_split`: the split `run_fn` gets as its eval files, to validate on
        (the train split: run_fn holds part of it out). Never the test split.
        `hyperparameters`: the Tuner's best values, which run_fn trains with.

        `warm_start_version`: the version of `serving_model_dir` to warm-start from
        (ServingHistory's output), or NO_VERSION.
        """
        unknown = set(schedule or {}) - set(TRAINING_PARAMETERS)
        if unknown:
            raise ValueError(f"Not settable per run: {sorted(unknown)}")
        spec = TrainerSpec(
            examples=examples,
            run_fn=run_fn,
            serving_model_dir=serving_model_dir,
            warm_start_version=warm_start_version,
            custom_config=json_utils.dumps(dict(custom_config)),
            hyperparameters=hyperparameters,
            train_args=tfx.proto.TrainArgs(splits=[TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[validation_split]),
            model=tfx.dsl.Channel(type=standard_artifacts.Model),
            model_run=tfx.dsl.Channel(type=standard_artifacts.ModelRun),
            **(schedule or {}),
        )
        super().__init__(spec=spec)
