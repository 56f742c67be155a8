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
from tfx.components.trainer.executor import GenericExecutor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from pipeline.cluster import TRAINING_PARAMETERS

CUSTOM_CONFIG = standard_component_specs.CUSTOM_CONFIG_KEY


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
        super().Do(input_dict, output_dict, apply_overrides(exec_properties))


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
    ):
        """`schedule` maps names in TRAINING_PARAMETERS to values or RuntimeParameters."""
        unknown = set(schedule or {}) - set(TRAINING_PARAMETERS)
        if unknown:
            raise ValueError(f"Not settable per run: {sorted(unknown)}")
        spec = TrainerSpec(
            examples=examples,
            run_fn=run_fn,
            custom_config=json_utils.dumps(dict(custom_config)),
            train_args=tfx.proto.TrainArgs(),
            eval_args=tfx.proto.EvalArgs(),
            model=tfx.dsl.Channel(type=standard_artifacts.Model),
            model_run=tfx.dsl.Channel(type=standard_artifacts.ModelRun),
            **(schedule or {}),
        )
        super().__init__(spec=spec)
