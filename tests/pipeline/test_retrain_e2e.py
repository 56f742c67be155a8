"""Scheduled retraining as cron runs it: `imgclf retrain` as new spans arrive.

One sequence of runs, shared by the tests:
1. span 1 arrives (8 images a class): a cold start, blessed, pushed as version 1;
2. span 2 (32 a class): warm-started from version 1, compared with it,
   pushed as version 2;
3. span 3, its train labels rotated (a mislabelled delivery): warm-started
   from version 2, worse than it, not blessed; serving stays at version 2;
4. no new span: every component up to the Evaluator is reused; nothing pushed;
5. span 4 brings a new class: a cold start that says why, judged alone;
6. while one retrain holds the lock, another refuses and a third waits.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgclf.cli.main import main
from imgclf.components.data_gate import RESULT_JSON
from imgclf.imagedata.sample import DEFAULT_CLASSES, write_sample_span
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.pipeline.report import outcome_of
from imgclf.pipeline.retrain import EXIT_BUSY, exclusive
from imgclf.pipeline.runs import list_runs
from imgclf.settings.config import DataConfig, load_config, to_env
from quick_training import SPAN_PATTERNS, quick_training, write_mislabelled_span

pytestmark = pytest.mark.e2e

NEW_CLASS = "ring"


def _settings(data_root: str, backbone_weights: str, output_dir: str) -> dict:
    return {
        "output_dir": output_dir,
        "data.root": data_root,
        **SPAN_PATTERNS,
        **quick_training(backbone_weights),
    }


@contextlib.contextmanager
def _environment(settings: dict):
    """The settings as IMGCLF_* variables, as cron would set them, for this process only."""
    saved = dict(os.environ)
    os.environ.update(to_env(name, str(value)) for name, value in settings.items())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _retrain(settings: dict) -> dict:
    """`imgclf retrain` in this process: exit status, its one line, seconds, the run."""
    out = io.StringIO()
    started = time.monotonic()
    with _environment(settings), contextlib.redirect_stdout(out):
        status = main(["retrain"])
    config = load_config(settings)
    return {
        "status": status,
        "line": out.getvalue().strip().splitlines()[-1],
        "seconds": time.monotonic() - started,
        "run": list_runs(config.metadata_path, config.pipeline_name)[-1],
    }


def _write_schema(root: str) -> None:
    data = DataConfig(root=root, **{k.split(".")[1]: v for k, v in SPAN_PATTERNS.items()})
    write_schema(make_schema(data), data.schema_path)


@pytest.fixture(scope="module")
def retrains(backbone_weights, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("spans") / "data")
    output_dir = str(tmp_path_factory.mktemp("retrain_output"))
    settings = _settings(root, backbone_weights, output_dir)
    config = load_config(settings)
    results = {"config": config, "settings": settings}

    write_sample_span(root, 1, train_per_class=8, eval_per_class=16, num_shards=2)
    _write_schema(root)
    results["span1"] = _retrain(settings)
    write_sample_span(root, 2, train_per_class=32, eval_per_class=16, num_shards=2)
    results["span2"] = _retrain(settings)
    write_mislabelled_span(root, 3)
    results["span3"] = _retrain(settings)
    results["serving_after_span3"] = sorted(os.listdir(config.serving_model_dir))
    results["no_new_span"] = _retrain(settings)
    _, added = write_sample_span(
        root, 4, class_names=(*DEFAULT_CLASSES, NEW_CLASS), train_per_class=16, eval_per_class=16
    )
    results["added"] = added
    _write_schema(root)  # the new class extends the label range: the user updates the schema
    results["span4"] = _retrain(settings)
    for name in ("span1", "span2", "span3", "no_new_span", "span4"):
        print(f"imgclf retrain, {name}: {results[name]['seconds']:.1f} s")  # for the record (-s)
    return results


def test_the_first_span_starts_cold_and_is_pushed_as_version_1(retrains):
    first = retrains["span1"]
    assert first["status"] == 0
    outcome = outcome_of(first["run"])
    assert outcome.blessed and outcome.baseline_accuracy is None
    assert outcome.training["start"]["warm"] is False
    assert Path(outcome.pushed_to) == Path(retrains["config"].serving_model_dir) / "1"
    assert first["line"].startswith("span 1: blessed (accuracy ")
    assert first["line"].endswith("pushed version 1")


def test_span_2_warm_starts_from_version_1_and_is_pushed_as_version_2(retrains):
    second = retrains["span2"]
    assert second["status"] == 0
    assert second["run"].nodes["Trainer"].state == "COMPLETE"
    # The model it starts from is served version 1, as ServingHistory found it.
    served = os.path.join(retrains["config"].serving_model_dir, "1")
    outcome = outcome_of(second["run"])
    assert outcome.training["start"]["warm"] is True
    assert outcome.training["start"]["source"] == served
    assert outcome.training["train_examples"] == 32 * len(DEFAULT_CLASSES)
    # Compared with version 1 on span 2's eval images, and better or as good.
    assert outcome.baseline_accuracy is not None
    assert outcome.blessed and outcome.accuracy >= outcome.baseline_accuracy
    assert os.path.basename(outcome.pushed_to) == "2"
    assert "Warm start from the blessed model" in second["line"]
    assert second["line"].endswith("pushed version 2")


def test_the_gate_compares_span_2_with_span_1(retrains):
    gate = retrains["span2"]["run"].nodes["DataGate"].output("result")
    with open(os.path.join(gate.uri, RESULT_JSON)) as f:
        span_drift = json.load(f)["span_drift"]
    assert span_drift["previous_span"] == 1
    assert span_drift["label_drift"] == pytest.approx(0.0, abs=1e-6)
    assert span_drift["image_changes"]["formats"] == 0.0


def test_a_mislabelled_span_is_not_blessed_and_serving_stays_at_version_2(retrains):
    third = retrains["span3"]
    assert third["status"] == 0  # a model not promoted is not a failure of the run
    outcome = outcome_of(third["run"])
    served = os.path.join(retrains["config"].serving_model_dir, "2")
    assert outcome.training["start"]["source"] == served
    assert outcome.blessed is False
    assert outcome.accuracy < outcome.baseline_accuracy
    assert outcome.pushed_to is None
    assert retrains["serving_after_span3"] == ["1", "2"]
    line = third["line"]
    assert line.startswith("span 3: not blessed (accuracy ")
    assert "against the last blessed model" in line
    assert line.endswith("not pushed; serving version 2")


def test_no_new_span_trains_nothing_and_pushes_nothing(retrains):
    rerun = retrains["no_new_span"]
    assert rerun["status"] == 0
    assert (
        rerun["line"] == "span 3: no new data: nothing trained, nothing pushed; serving version 2"
    )
    nodes = rerun["run"].nodes
    for node in (
        "ImportExampleGen",
        "ImageValidator",
        "StatisticsGen",
        "DataGate",
        "Trainer",
        "Evaluator",
    ):
        assert nodes[node].state == "CACHED", node
    # MLMD: no Trainer execution ran in this run; its model is span 3's.
    assert nodes["Trainer"].output("model").uri == (
        retrains["span3"]["run"].nodes["Trainer"].output("model").uri
    )
    assert outcome_of(rerun["run"]).pushed_to is None


def test_a_new_class_starts_cold_and_says_why(retrains):
    fourth = retrains["span4"]
    assert retrains["added"] == [NEW_CLASS]
    outcome = outcome_of(fourth["run"])
    start = outcome.training["start"]
    assert start["warm"] is False
    assert "the classes changed since the blessed model" in start["reason"]
    assert f"(added {NEW_CLASS})" in start["reason"]
    assert outcome.training["class_names"] == [*DEFAULT_CLASSES, NEW_CLASS]
    # No earlier model has these classes: it is judged by the absolute bounds alone.
    assert outcome.baseline_accuracy is None
    assert "Cold start from the pretrained base: the classes changed" in fourth["line"]
    serving = sorted(p.name for p in Path(retrains["config"].serving_model_dir).iterdir())
    assert serving == (["1", "2", "3"] if outcome.blessed else ["1", "2"])


def test_an_overlapping_retrain_refuses_and_a_waiting_one_runs_after(retrains):
    config, settings = retrains["config"], retrains["settings"]
    env = dict(os.environ)
    env.update(to_env(name, str(value)) for name, value in settings.items())
    imgclf = str(Path(sys.executable).with_name("imgclf"))
    runs_before = len(list_runs(config.metadata_path, config.pipeline_name))
    with exclusive(config, wait=False):  # as a retrain in progress holds it
        waiting = subprocess.Popen(
            [imgclf, "retrain", "--wait"], env=env, stdout=subprocess.PIPE, text=True
        )
        refused = subprocess.run(
            [imgclf, "retrain"], env=env, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == EXIT_BUSY
        assert f"Another run of {config.pipeline_name} is in progress" in refused.stderr
        assert f"pid {os.getpid()}" in refused.stderr
        assert refused.stdout == ""
        assert waiting.poll() is None  # it cannot finish while the lock is held
        assert len(list_runs(config.metadata_path, config.pipeline_name)) == runs_before
    out, _ = waiting.communicate(timeout=600)
    assert waiting.returncode == 0
    assert out.strip().splitlines()[-1].startswith("span 4: no new data")
    assert len(list_runs(config.metadata_path, config.pipeline_name)) == runs_before + 1
