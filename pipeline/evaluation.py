"""What the Evaluator measures and the bar a new model must clear to be blessed."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from pipeline.config import DataConfig, EvaluationConfig
from trainer.export import SERVING_DEFAULT
from trainer.model import OUTPUT_NAME

ACCURACY = "sparse_categorical_accuracy"


def make_eval_config(evaluation: EvaluationConfig, data: DataConfig) -> tfma.EvalConfig:
    """Accuracy must reach `min_accuracy`, and beat the last blessed model by `min_improvement`.

    On the first run there is no blessed model: TFMA then checks only the
    absolute bound.
    """
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": evaluation.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": evaluation.min_improvement},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_DEFAULT,
                label_key=data.label_key,
                prediction_key=OUTPUT_NAME,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy", threshold=accuracy_threshold
                    ),
                ]
            )
        ],
    )
