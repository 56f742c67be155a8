"""TFX's Evaluator, its baseline a served version that ServingHistory chose.

The baseline arrives as a version number (a parameter, so the Evaluator's
cache key follows the version, not a copy of it); the executor hands that
version to TFX's executor as a Model artifact. With NO_VERSION, TFX's Evaluator
judges by the absolute thresholds alone, as it does without a baseline.
"""

import os
from typing import ClassVar

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, proto_utils

from imgclf.components.evaluation import ACCURACY, CANDIDATE, read_metrics
from imgclf.components.key_figure import record_key_figure
from imgclf.components.serving_history import served_model
from imgclf.settings.names import (
    BASELINE_VERSION,
    BLESSED_PROPERTY,
    EVAL_SPLIT,
    EVALUATOR,
    NO_VERSION,
    SERVING_MODEL_DIR,
    TEST_ACCURACY_PROPERTY,
)
from imgclf.trainer.export import load_saved_model


class Executor(evaluator_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        properties = dict(exec_properties)
        # On Kubeflow it arrives as text: TFX's compiler types a dynamic parameter STRING.
        version = int(properties.pop(BASELINE_VERSION, NO_VERSION))
        serving_model_dir = properties.pop(SERVING_MODEL_DIR, "")
        inputs = dict(input_dict)
        served = os.path.join(serving_model_dir, str(version))
        if version != NO_VERSION:
            baseline = served_model(serving_model_dir, version, self._get_tmp_dir())
            inputs[standard_component_specs.BASELINE_MODEL_KEY] = [baseline]
        try:
            super().Do(inputs, output_dict, properties)
        except Exception:
            # TFMA fails deep in Beam, in TensorFlow's words; say whether the served model is
            # what failed. Only on failure: a successful evaluation has loaded it already.
            if version != NO_VERSION:
                load_saved_model(served)
            raise
        blessing = output_dict[standard_component_specs.BLESSING_KEY][0]
        if version != NO_VERSION:
            _name_the_served_baseline(blessing, served)
        evaluation = output_dict[standard_component_specs.EVALUATION_KEY][0]
        eval_config = proto_utils.json_to_proto(
            properties[standard_component_specs.EVAL_CONFIG_KEY], tfma.EvalConfig()
        )
        label_key = eval_config.model_specs[0].label_key
        accuracy = read_metrics(evaluation.uri, label_key)[CANDIDATE].overall[ACCURACY]
        # The Pusher records it with the version it pushes (the version's provenance).
        blessing.set_float_custom_property(TEST_ACCURACY_PROPERTY, accuracy)
        blessed = "blessed" if blessing.get_int_custom_property(BLESSED_PROPERTY) else "not blessed"
        record_key_figure(blessing, EVALUATOR, f"accuracy {accuracy:.3f}; {blessed}")


def _name_the_served_baseline(blessing: types.Artifact, served: str) -> None:
    """The blessing names the served version it was compared with, not the scratch copy.

    The copy has no metadata id; TFX's Kubeflow runner would fail to translate one.
    """
    del blessing.mlmd_artifact.custom_properties[constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY]
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, served)


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    PARAMETERS: ClassVar[dict] = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        BASELINE_VERSION: ExecutionParameter(type=int),
        SERVING_MODEL_DIR: ExecutionParameter(type=str),
    }


class Evaluator(base_beam_component.BaseBeamComponent):
    """Evaluates `model` on `examples` with `eval_config`, against a served baseline if any."""

    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        eval_config,
        serving_model_dir: str,
        baseline_version,
    ):
        """`baseline_version`: ServingHistory's (a placeholder of its output)."""
        spec = EvaluatorSpec(
            examples=examples,
            model=model,
            eval_config=eval_config,
            # The test split only: the Trainer chose its epochs on the validation records.
            example_splits=json_utils.dumps([EVAL_SPLIT]),
            fairness_indicator_thresholds=json_utils.dumps(None),
            serving_model_dir=serving_model_dir,
            baseline_version=baseline_version,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
