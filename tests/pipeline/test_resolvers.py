import json

import pytest
from tfx.types import standard_artifacts

from components.image_validator import ImageValidationReport
from pipeline.config import DataConfig
from pipeline.resolvers import (
    IMAGE_REPORT,
    MODEL,
    MODEL_BLESSING,
    STATISTICS,
    ComparableModelStrategy,
    PreviousSpanStrategy,
    WarmStartModelStrategy,
    span_settings,
)

FOUR = ["circle", "square", "triangle", "plus"]


@pytest.fixture
def data(span_data) -> DataConfig:
    """Spans 1, 2 and 4: a run reads span 4."""
    return span_data


def _model(artifact_id: int, span: int, classes=FOUR):
    model = standard_artifacts.Model()
    model.id = artifact_id
    model.set_int_custom_property("span", span)
    model.set_string_custom_property("class_names", json.dumps(classes))
    return model


def _blessing(model_id: int, blessed: bool):
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("current_model_id", model_id)
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def _ids(resolved):
    return [model.id for model in resolved[MODEL]]


# Models 1 and 2 blessed (spans 1, 2); model 3 (span 4) not; model 4 (span 4) blessed.
MODELS = [_model(1, 1), _model(2, 2), _model(3, 4), _model(4, 4, [*FOUR, "ring"])]
BLESSINGS = [_blessing(1, True), _blessing(2, True), _blessing(3, False), _blessing(4, True)]


def test_warm_start_takes_the_latest_blessed_model_of_an_earlier_span(data):
    strategy = WarmStartModelStrategy(**span_settings(data))
    resolved = strategy.resolve_artifacts(None, {MODEL: MODELS, MODEL_BLESSING: BLESSINGS})
    # The newest span is 4: model 4 was trained on it, so a rerun would start from itself.
    assert _ids(resolved) == [2]
    assert resolved[MODEL_BLESSING][0].get_int_custom_property("current_model_id") == 2


def test_a_backfill_warm_starts_from_before_its_span(data):
    backfill = span_settings(data.model_copy(update={"span": 2}))
    resolved = WarmStartModelStrategy(**backfill).resolve_artifacts(
        None, {MODEL: MODELS, MODEL_BLESSING: BLESSINGS}
    )
    assert _ids(resolved) == [1]
    none = WarmStartModelStrategy(**span_settings(data.model_copy(update={"span": 1})))
    assert none.resolve_artifacts(None, {MODEL: MODELS, MODEL_BLESSING: BLESSINGS}) == {
        MODEL: [],
        MODEL_BLESSING: [],
    }


def test_the_baseline_is_the_latest_blessed_model_of_the_same_classes():
    inputs = {MODEL: MODELS, MODEL_BLESSING: BLESSINGS}
    assert _ids(ComparableModelStrategy(FOUR).resolve_artifacts(None, inputs)) == [2]
    assert _ids(ComparableModelStrategy([*FOUR, "ring"]).resolve_artifacts(None, inputs)) == [4]
    assert _ids(ComparableModelStrategy(["a", "b"]).resolve_artifacts(None, inputs)) == []


def test_the_previous_span_is_the_newest_before_this_runs_span(data):
    def statistics(artifact_id, span):
        artifact = standard_artifacts.ExampleStatistics()
        artifact.id, artifact.span = artifact_id, span
        return artifact

    def report(artifact_id, span):
        artifact = ImageValidationReport()
        artifact.id = artifact_id
        artifact.set_int_custom_property("span", span)
        return artifact

    inputs = {
        STATISTICS: [statistics(1, 1), statistics(2, 2), statistics(3, 2), statistics(4, 4)],
        IMAGE_REPORT: [report(5, 2), report(6, 1), report(7, 4)],
    }
    resolved = PreviousSpanStrategy(**span_settings(data)).resolve_artifacts(None, inputs)
    assert [a.id for a in resolved[STATISTICS]] == [3]  # span 2, the later of two runs
    assert [a.id for a in resolved[IMAGE_REPORT]] == [5]
    first = span_settings(data.model_copy(update={"span": 1}))
    assert PreviousSpanStrategy(**first).resolve_artifacts(None, inputs) == {
        STATISTICS: [],
        IMAGE_REPORT: [],
    }
