"""Which earlier artifacts a run builds on: the models it starts from and compares with,
and the statistics of the span before it.

Each is a TFX resolver strategy, run by the orchestrator before the
components that use what it resolves. The span a run reads is found on disk
the way ExampleGen finds it (pipeline/spans.py), so a run that is repeated
with no new span resolves exactly what it resolved the first time, and TFX's
cache can reuse every component's output.

Kubeflow's compiler accepts only TFX's two built-in strategies; on a cluster
the pipeline uses those instead (see pipeline/pipeline.py).
"""

from __future__ import annotations

import json

from tfx import types
from tfx.components.evaluator.constants import (
    ARTIFACT_PROPERTY_BLESSED_KEY,
    ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY,
)
from tfx.dsl.components.common import resolver
from tfx.types import standard_artifacts

from components.example_gen import span_of
from components.trainer import CLASS_NAMES_PROPERTY
from pipeline.config import DataConfig
from pipeline.spans import find_span, input_splits

MODEL = "model"
MODEL_BLESSING = "model_blessing"
STATISTICS = "statistics"
IMAGE_REPORT = "image_report"


def span_settings(data: DataConfig) -> dict:
    """The settings a strategy needs to find the span this run reads (None is no setting)."""
    settings = {
        "input_base": data.root,
        "train_pattern": data.train_pattern,
        "eval_pattern": data.eval_pattern,
    }
    return settings if data.span is None else {**settings, "span": data.span}


def blessed_models(input_dict: dict[str, list[types.Artifact]]) -> list[tuple]:
    """(model, blessing) of every blessed model, newest first."""
    blessings = {
        blessing.get_int_custom_property(ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): blessing
        for blessing in input_dict[MODEL_BLESSING]
        if blessing.get_int_custom_property(ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    }
    models = sorted(input_dict[MODEL], key=lambda model: model.id, reverse=True)
    return [(model, blessings[model.id]) for model in models if model.id in blessings]


def _first(pairs: list[tuple]) -> dict[str, list[types.Artifact]]:
    model, blessing = pairs[0] if pairs else (None, None)
    return {MODEL: [model] if model else [], MODEL_BLESSING: [blessing] if blessing else []}


class _SpanStrategy(resolver.ResolverStrategy):
    """A strategy that chooses by the span this run reads (its settings: span_settings)."""

    def __init__(self, input_base: str, train_pattern: str, eval_pattern: str, span=None):
        self._data = DataConfig(
            root=input_base, train_pattern=train_pattern, eval_pattern=eval_pattern
        )
        self._span = span

    def run_span(self) -> int:
        return find_span(self._data.root, input_splits(self._data), self._span).number


class WarmStartModelStrategy(_SpanStrategy):
    """The latest blessed model trained on an earlier span than the one this run reads."""

    def resolve_artifacts(self, store, input_dict):
        current = self.run_span()
        earlier = [pair for pair in blessed_models(input_dict) if span_of(pair[0]) < current]
        return _first(earlier)


class ComparableModelStrategy(resolver.ResolverStrategy):
    """The latest blessed model with the same classes: the Evaluator's baseline.

    A model with other classes cannot be compared metric by metric; with none
    left, the new model is judged by the absolute bounds alone.
    """

    def __init__(self, class_names: list[str]):
        self._class_names = list(class_names)

    def resolve_artifacts(self, store, input_dict):
        same = [
            pair
            for pair in blessed_models(input_dict)
            if pair[0].has_custom_property(CLASS_NAMES_PROPERTY)
            and json.loads(pair[0].get_string_custom_property(CLASS_NAMES_PROPERTY))
            == self._class_names
        ]
        return _first(same)


class PreviousSpanStrategy(_SpanStrategy):
    """The statistics and image report of the latest span before the one this run reads."""

    def resolve_artifacts(self, store, input_dict):
        current = self.run_span()
        resolved = {}
        for key in (STATISTICS, IMAGE_REPORT):
            earlier = [a for a in input_dict[key] if span_of(a) < current]
            newest = max(
                earlier, key=lambda artifact: (span_of(artifact), artifact.id), default=None
            )
            resolved[key] = [newest] if newest else []
        return resolved


def model_channels() -> dict[str, types.BaseChannel]:
    return {
        MODEL: types.Channel(type=standard_artifacts.Model),
        MODEL_BLESSING: types.Channel(type=standard_artifacts.ModelBlessing),
    }
