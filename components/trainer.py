"""TFX's Trainer, with the training schedule settable per run.

The trainer module reads its settings from `custom_config`, one JSON string
fixed when the pipeline is compiled. This Trainer also takes the epochs and
learning rates of both phases as execution properties, which can be runtime
parameters on Kubeflow; the executor writes the ones that are set over
`custom_config`'s training section before TFX's executor calls `run_fn`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from tfx import v1 as tfx
from tfx.components.example_gen.utils import SPAN_PROPERTY_NAME
from tfx.components.trainer.executor import GenericExecutor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.example_gen import span_of
from imagedata.records import read_labels
from pipeline.cluster import TRAINING_PARAMETERS
from pipeline.config import TrainerConfig

CUSTOM_CONFIG = standard_component_specs.CUSTOM_CONFIG_KEY
EXAMPLES = standard_component_specs.EXAMPLES_KEY
MODEL = standard_component_specs.MODEL_KEY
# Custom properties of the Model artifact.
CLASS_NAMES_PROPERTY = "class_names"


class TrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS: ClassVar[dict] = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        **{
            name: ExecutionParameter(type=ptype, optional=True)
            for name, ptype in TRAINING_PARAMETERS.items()
        },
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
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        properties = apply_overrides(exec_properties)
        super().Do(input_dict, output_dict, properties)
        # What the resolvers choose models by: the span trained on and the classes.
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES])
        model = artifact_utils.get_single_instance(output_dict[MODEL])
        model.set_int_custom_property(SPAN_PROPERTY_NAME, span_of(examples))
        labels_path = TrainerConfig.model_validate_json(properties[CUSTOM_CONFIG]).data.labels_path
        model.set_string_custom_property(CLASS_NAMES_PROPERTY, json.dumps(read_labels(labels_path)))


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
        base_model: tfx.dsl.Channel | None = None,
    ):
        """`schedule` maps names in TRAINING_PARAMETERS to values or RuntimeParameters.

        `base_model`: the model to warm-start from, when warm start is on.
        """
        unknown = set(schedule or {}) - set(TRAINING_PARAMETERS)
        if unknown:
            raise ValueError(f"Not settable per run: {sorted(unknown)}")
        spec = TrainerSpec(
            examples=examples,
            base_model=base_model,
            run_fn=run_fn,
            custom_config=json_utils.dumps(dict(custom_config)),
            train_args=tfx.proto.TrainArgs(),
            eval_args=tfx.proto.EvalArgs(),
            model=tfx.dsl.Channel(type=standard_artifacts.Model),
            model_run=tfx.dsl.Channel(type=standard_artifacts.ModelRun),
            **(schedule or {}),
        )
        super().__init__(spec=spec)
