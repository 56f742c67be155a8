"""The serving check loads a model in a process of its own and replays its warmup requests;
the Pusher pushes only a model that passed, and keeps the served classes."""

import json
import os
import shutil
from pathlib import Path

import pytest
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from imgclf.components.image_validator import REPORT_JSON, ImageValidationReport
from imgclf.components.pusher import VersionedPusher
from imgclf.components.serving_check import (
    BLESSED_FILE,
    NOT_BLESSED_FILE,
    ServingCheck,
    describe,
    read_result,
)
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.modelstore.serving_folder import PROVENANCE_FILE, recorded_pushes, versions
from imgclf.settings.names import (
    BLESSED_PROPERTY,
    KEY_FIGURE_PROPERTY,
    NOT_PUSHED_PROPERTY,
    PUSHED_PROPERTY,
)
from imgclf.trainer.export import export_model
from imgclf.trainer.model import build_model
from imgclf.trainer.warmup import warmup_requests, write_warmup_requests
from quick_training import MAX_PIXELS

TIMEOUT_SECONDS = 120.0


@pytest.fixture(scope="module")
def model_artifact(tiny_backbone, tmp_path_factory):
    """A Trainer's Model artifact: an exported model with 3 eval images as warmup requests."""
    root = tmp_path_factory.mktemp("trainer_model")
    export_dir = path_utils.serving_model_dir(str(root))
    model = build_model(tiny_backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    summary = {"phases": [], "class_names": list(DEFAULT_CLASSES)}
    export_model(model, export_dir, list(DEFAULT_CLASSES), 32, "image", summary, MAX_PIXELS)
    records = generate_split(DEFAULT_CLASSES, "eval", 1, size=40, image_format="jpeg")
    examples = [to_example(r).SerializeToString() for r in list(records)[:3]]
    write_warmup_requests(export_dir, warmup_requests(examples, "image"))
    return _artifact(standard_artifacts.Model, str(root))


def _artifact(kind, uri: str):
    artifact = kind()
    artifact.uri = uri
    return artifact


def _check(model, tmp_path, timeout=TIMEOUT_SECONDS, max_latency_ms=0.0):
    blessing = _artifact(standard_artifacts.InfraBlessing, str(tmp_path / "blessing"))
    ServingCheck.test_call(
        model=model, blessing=blessing, timeout_seconds=timeout, max_latency_ms=max_latency_ms
    )
    return blessing, read_result(blessing.uri)


def test_a_sound_model_loads_elsewhere_and_answers_every_warmup_request(model_artifact, tmp_path):
    blessing, result = _check(model_artifact, tmp_path)
    assert blessing.get_int_custom_property(BLESSED_PROPERTY) == 1
    assert os.path.exists(os.path.join(blessing.uri, BLESSED_FILE))
    assert set(result) == {"load_seconds", "warmup_ms", "latency_ms", "passed"}
    assert result["passed"]
    assert result["load_seconds"] > 0
    # Both signatures, one image alone and the three together: a warmup pass, then again.
    assert len(result["warmup_ms"]) == len(result["latency_ms"]) == 4
    assert all(latency > 0 for latency in result["latency_ms"])
    # The first call of a signature builds its graph: what warmup spares a client.
    assert max(result["latency_ms"]) < max(result["warmup_ms"])
    assert describe(result).startswith(f"loaded in {result['load_seconds']:.1f} s; 4 warmup")


def test_a_model_slower_than_the_bound_fails_and_says_which_setting(model_artifact, tmp_path):
    blessing, result = _check(model_artifact, tmp_path, max_latency_ms=1e-6)
    assert blessing.get_int_custom_property(BLESSED_PROPERTY) == 0
    assert os.path.exists(os.path.join(blessing.uri, NOT_BLESSED_FILE))
    assert "(serving.max_latency_ms 1e-06)" in result["reason"]


def test_a_model_that_does_not_load_fails_with_the_loaders_error(model_artifact, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(model_artifact.uri, broken)
    (Path(path_utils.serving_model_dir(str(broken))) / "saved_model.pb").write_bytes(b"not a graph")
    blessing, result = _check(_artifact(standard_artifacts.Model, str(broken)), tmp_path)
    assert blessing.get_int_custom_property(BLESSED_PROPERTY) == 0
    assert result["reason"].startswith("the serving process failed (exit 1):")
    assert "saved_model.pb" in result["reason"]


def test_a_model_not_answering_before_the_deadline_fails(model_artifact, tmp_path):
    blessing, result = _check(model_artifact, tmp_path, timeout=0.05)
    assert blessing.get_int_custom_property(BLESSED_PROPERTY) == 0
    assert result["reason"] == "not loaded and answering within 0.05 s"


def test_the_pusher_pushes_nothing_that_failed_the_serving_check(model_artifact, tmp_path):
    failed = _artifact(standard_artifacts.InfraBlessing, str(tmp_path / "check"))
    failed.set_int_custom_property(BLESSED_PROPERTY, 0)
    serving = tmp_path / "serving"
    pushed = _push(model_artifact, tmp_path, serving, allow_class_change=0, infra=failed)
    assert pushed.get_int_custom_property(PUSHED_PROPERTY) == 0
    assert versions(str(serving)) == []
    figure = pushed.get_string_custom_property(KEY_FIGURE_PROPERTY)
    assert figure == "nothing pushed: it failed the serving check"


def _served_with_classes(serving, class_names) -> None:
    """Version 1 of a model of `class_names`, as the Pusher records it."""
    version = serving / "1"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"served")
    (version / PROVENANCE_FILE).write_text(json.dumps({"span": 1, "class_names": class_names}))


def _push(model, tmp_path, serving, allow_class_change: int, infra=None):
    """The Pusher on a blessed model, with the data profile a push records beside it."""
    blessed = _artifact(standard_artifacts.ModelBlessing, str(tmp_path / "evaluation"))
    blessed.set_int_custom_property(BLESSED_PROPERTY, 1)
    statistics = _artifact(standard_artifacts.ExampleStatistics, str(tmp_path / "statistics"))
    (tmp_path / "statistics" / "Split-train").mkdir(parents=True, exist_ok=True)
    (tmp_path / "statistics" / "Split-train" / "FeatureStats.pb").write_bytes(b"")
    report = _artifact(ImageValidationReport, str(tmp_path / "report"))
    (tmp_path / "report").mkdir(exist_ok=True)
    (tmp_path / "report" / REPORT_JSON).write_text("{}")
    pushed = _artifact(standard_artifacts.PushedModel, str(tmp_path / "pushed"))
    model.set_int_custom_property("span", 2)  # as the Trainer's model of span 2 carries it
    VersionedPusher.test_call(
        model=model,
        model_blessing=blessed,
        infra_blessing=infra,
        statistics=statistics,
        image_report=report,
        pushed_model=pushed,
        serving_model_dir=str(serving),
        push_records_dir=str(tmp_path / "pushes"),
        allow_class_change=allow_class_change,
    )
    return pushed


@pytest.mark.parametrize(
    "served, difference",
    [
        (["circle", "square", "triangle"], "added plus"),
        (["circle", "square", "triangle", "plus", "ring"], "removed ring"),
        (["square", "circle", "triangle", "plus"], "the same classes in another order"),
    ],
)
def test_a_model_of_other_classes_is_not_pushed_over_the_served_one_unless_allowed(
    served, difference, model_artifact, tmp_path
):
    assert list(DEFAULT_CLASSES) == ["circle", "square", "triangle", "plus"]
    serving = tmp_path / "serving"
    _served_with_classes(serving, served)
    refused = _push(model_artifact, tmp_path, serving, allow_class_change=0)
    assert refused.get_int_custom_property(PUSHED_PROPERTY) == 0
    assert refused.get_string_custom_property(NOT_PUSHED_PROPERTY) == (
        f"its classes differ from served version 1's ({difference})"
    )
    assert versions(str(serving)) == [1]
    assert recorded_pushes(str(tmp_path / "pushes"), str(serving)) == []
    allowed = _push(model_artifact, tmp_path, serving, allow_class_change=1)
    assert allowed.get_int_custom_property(PUSHED_PROPERTY) == 1
    assert versions(str(serving)) == [1, 2]
    assert recorded_pushes(str(tmp_path / "pushes"), str(serving)) == [str(serving / "2")]
