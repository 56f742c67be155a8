"""Scheduled retraining as cron runs it: `imgclf retrain` as new spans arrive, and faults.

One sequence of runs, shared by the tests:
1. span 1 arrives (8 images a class), but a file stands where the serving
   folder should be: the push fails, and the run says so and exits 1;
2. the file removed, the next run trains nothing (cached) and pushes version 1;
3. span 2 (32 a class): warm-started from version 1, compared with it,
   pushed as version 2;
4. span 3, its train labels rotated (a mislabelled delivery): its first run is
   stopped (SIGTERM) in the Trainer: it says so in its line, exits 143, and
   leaves the lock released and its Trainer marked; its second run is
   killed (SIGKILL) in the Trainer, and `imgclf report` says so; the next run
   names the killed holder of the lock, closes the killed Trainer in ML
   Metadata, warm-starts from version 2, is worse, not blessed;
5. no new span: every component up to the Evaluator is reused; nothing pushed;
6. the metadata store is lost: the next run moves the old outputs aside, trains
   span 3 again and still judges it against the served version 2, not blessed;
7. span 4 brings a new class, into a serving folder where others left a file,
   a folder that is no version, and a dead push's staging folder: a cold start
   that says why, judged alone, and not pushed over version 2, whose clients
   know three classes; run again with evaluation.allow_class_change, only the
   Pusher runs, and a push clears the staging folder;
8. while one retrain holds the lock, another refuses and a third waits.
"""

import contextlib
import filecmp
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imgclf.cli.main import main
from imgclf.components.data_gate import RESULT_JSON
from imgclf.imagedata.sample import DEFAULT_CLASSES, write_sample_span
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.modelstore.serving_folder import STAGING_PREFIX, versions
from imgclf.pipeline.local_run import SET_ASIDE_SUFFIX
from imgclf.pipeline.lock import EXIT_BUSY, exclusive, lock_path
from imgclf.pipeline.report import outcome_of
from imgclf.pipeline.runs import KILLED, list_runs
from imgclf.settings.config import load_config, to_env
from imgclf.settings.data import DataConfig
from imgclf.trainer.schedule import FEATURE_EXTRACTION
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
    """`imgclf retrain` in this process: exit status, its lines, seconds, the run and outcome.

    The outcome is read at once: a later fault may move the run's outputs away.
    """
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with _environment(settings), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["retrain"])
    config = load_config(settings)
    run = list_runs(config.metadata_path, config.pipeline_name)[-1]
    return {
        "status": status,
        "line": out.getvalue().strip().splitlines()[-1],
        "stderr": err.getvalue(),
        "seconds": time.monotonic() - started,
        "run": run,
        "outcome": outcome_of(run),
    }


def _report(settings: dict) -> str:
    out = io.StringIO()
    with _environment(settings), contextlib.redirect_stdout(out):
        main(["report"])
    return out.getvalue()


def _signalled_in_the_trainer(settings: dict, signum: int, deadline: float = 900) -> dict:
    """Starts `imgclf retrain` as cron would and sends it `signum` once the Trainer has
    finished an epoch; its pid, exit status and last line. A child that never gets there
    is killed at the deadline."""
    env = dict(os.environ)
    env.update(to_env(name, str(value)) for name, value in settings.items())
    imgclf = str(Path(sys.executable).with_name("imgclf"))
    child = subprocess.Popen(
        [imgclf, "retrain"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    watchdog = threading.Timer(deadline, child.kill)
    watchdog.start()
    marker = f"[trainer] {FEATURE_EXTRACTION} epoch 0 done"
    try:
        lines = iter(child.stdout)
        reached = any(line.startswith(marker) for line in lines)
        child.send_signal(signum)
        rest = [line.rstrip() for line in lines]  # to the end of its output: it has ended
        child.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert reached, f"the retrain never reached {marker!r} within {deadline:.0f} s"
    return {"pid": child.pid, "status": child.returncode, "line": rest[-1] if rest else None}


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(done.stdout)


def _write_schema(root: str) -> None:
    data = DataConfig(root=root, **{k.split(".")[1]: v for k, v in SPAN_PATTERNS.items()})
    write_schema(make_schema(data), data.schema_path)


@pytest.fixture(scope="module")
def retrains(backbone_weights, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("spans") / "data")
    output_dir = str(tmp_path_factory.mktemp("retrain_output"))
    settings = _settings(root, backbone_weights, output_dir)
    config = load_config(settings)
    serving = Path(config.serving_model_dir)
    results = {"config": config, "settings": settings}

    write_sample_span(root, 1, train_per_class=8, eval_per_class=16, num_shards=2)
    _write_schema(root)
    serving.parent.mkdir(parents=True)
    serving.write_text("a file where the serving folder should be")
    results["span1_push_fails"] = _retrain(settings)
    results["report_after_failed_push"] = _report(settings)
    serving.unlink()
    results["span1"] = _retrain(settings)
    write_sample_span(root, 2, train_per_class=32, eval_per_class=16, num_shards=2)
    results["span2"] = _retrain(settings)
    span2_model = results["span2"]["run"].nodes["Trainer"].output("model").uri

    write_mislabelled_span(root, 3)
    results["terminated"] = _signalled_in_the_trainer(settings, signal.SIGTERM)
    results["lock_after_sigterm"] = Path(lock_path(config)).read_text()
    results["serving_after_sigterm"] = versions(str(serving))
    results["report_after_sigterm"] = _report(settings)
    results["killed_pid"] = _signalled_in_the_trainer(settings, signal.SIGKILL)["pid"]
    results["report_after_kill"] = _report(settings)
    results["span3"] = _retrain(settings)
    results["serving_after_span3"] = versions(str(serving))
    results["stopped_trainers"] = [
        run.nodes["Trainer"].stopped
        for run in list_runs(config.metadata_path, config.pipeline_name)
        if run.nodes.get("Trainer") and run.nodes["Trainer"].state == "CANCELED"
    ]
    results["no_new_span"] = _retrain(settings)

    span2_model_copy = str(tmp_path_factory.mktemp("span2_model"))
    shutil.copytree(span2_model, span2_model_copy, dirs_exist_ok=True)
    os.remove(config.metadata_path)
    results["lost_store"] = _retrain(settings)
    aside = [
        path
        for path in Path(config.pipeline_root).parent.iterdir()
        if path.name.startswith(Path(config.pipeline_root).name + SET_ASIDE_SUFFIX)
    ]
    results["set_aside"] = aside
    results["span2_model"] = (span2_model, span2_model_copy)

    _, added = write_sample_span(
        root, 4, class_names=(*DEFAULT_CLASSES, NEW_CLASS), train_per_class=16, eval_per_class=16
    )
    results["added"] = added
    _write_schema(root)  # the new class extends the label range: the user updates the schema
    (serving / "README").write_text("served by TF Serving; ask the ML team")
    (serving / "\u00b2").mkdir()
    leftover = serving / f"{STAGING_PREFIX}3-0123abcd-{socket.gethostname()}-{_dead_pid()}"
    (leftover / "variables").mkdir(parents=True)
    results["leftover"] = leftover
    results["span4"] = _retrain(settings)
    results["span4_allowed"] = _retrain({**settings, "evaluation.allow_class_change": True})
    for name in ("span1_push_fails", "span1", "span2", "span3", "no_new_span", "lost_store"):
        print(f"imgclf retrain, {name}: {results[name]['seconds']:.1f} s")  # for the record (-s)
    return results


def test_a_failed_push_fails_the_run_and_says_so(retrains):
    failed = retrains["span1_push_fails"]
    assert failed["status"] == 1
    assert failed["run"].nodes["Pusher"].state == "FAILED"
    assert failed["line"].startswith("span 1: FAILED in Pusher: ")
    assert failed["line"].endswith("; nothing pushed; nothing served")
    report = retrains["report_after_failed_push"]
    assert "  FAILED: Pusher (its error is in the run's log)." in report
    assert "  Blessed: yes" in report
    assert "  Not pushed: the Pusher did not finish." in report


def test_the_run_after_a_failed_push_pushes_the_cached_model_and_says_so(retrains):
    retried = retrains["span1"]
    assert retried["run"].nodes["Trainer"].state == "CACHED"
    assert retried["run"].nodes["Pusher"].state == "COMPLETE"
    assert retried["status"] == 0
    assert retried["line"].startswith("span 1: no new data: nothing trained; blessed (accuracy ")
    assert retried["line"].endswith("; pushed version 1; serving version 1")


def test_the_first_span_starts_cold_and_is_pushed_as_version_1(retrains):
    outcome = retrains["span1"]["outcome"]
    assert outcome.blessed and outcome.baseline_accuracy is None
    assert outcome.training["start"]["warm"] is False
    assert Path(outcome.pushed_to) == Path(retrains["config"].serving_model_dir) / "1"


def test_span_2_warm_starts_from_version_1_and_is_pushed_as_version_2(retrains):
    second = retrains["span2"]
    assert second["status"] == 0
    assert second["run"].nodes["Trainer"].state == "COMPLETE"
    # The model it starts from is served version 1, as ServingHistory found it.
    served = os.path.join(retrains["config"].serving_model_dir, "1")
    outcome = second["outcome"]
    assert outcome.training["start"]["warm"] is True
    assert outcome.training["start"]["source"] == served
    # Span 2's train split: part trains, part validates; its eval split tests.
    training = outcome.training
    assert training["train_examples"] + training["validation_examples"] == 32 * len(DEFAULT_CLASSES)
    # Compared with version 1 on span 2's eval images, and better or as good.
    assert outcome.baseline_accuracy is not None
    assert outcome.blessed and outcome.accuracy >= outcome.baseline_accuracy
    assert os.path.basename(outcome.pushed_to) == "2"
    assert "Warm start from the blessed model" in second["line"]
    assert second["line"].endswith("; pushed version 2; serving version 2")


def test_the_gate_compares_span_2_with_span_1(retrains):
    gate = retrains["span2"]["run"].nodes["DataGate"].output("result")
    # The store was lost later (step 6): span 2's outputs were moved aside, intact.
    [aside] = retrains["set_aside"]
    moved = gate.uri.replace(retrains["config"].pipeline_root, str(aside))
    with open(os.path.join(moved, RESULT_JSON)) as f:
        span_drift = json.load(f)["span_drift"]
    assert span_drift["previous_span"] == 1
    assert span_drift["label_drift"] == pytest.approx(0.0, abs=1e-6)
    assert span_drift["image_changes"]["formats"] == 0.0


def test_a_run_killed_in_the_trainer_is_reported_killed_and_mended_by_the_next(retrains):
    report = retrains["report_after_kill"]
    assert "  KILLED: Trainer never finished (the run's process died); nothing after it ran." in (
        report
    )
    stderr = retrains["span3"]["stderr"]
    assert f"the previous run (pid {retrains['killed_pid']} on " in stderr
    assert "was killed; its lock was taken over" in stderr
    assert "marked as killed in ML Metadata: Trainer" in stderr
    assert retrains["stopped_trainers"] == ["stopped by SIGTERM", KILLED]


def test_a_run_stopped_by_sigterm_says_so_in_its_line_and_leaves_nothing_to_mend(retrains):
    terminated = retrains["terminated"]
    assert terminated["status"] == 143
    assert terminated["line"] == (
        "span 3: stopped by SIGTERM in Trainer; nothing pushed; serving version 2"
    )
    assert retrains["lock_after_sigterm"] == ""  # released, and naming no holder
    assert retrains["serving_after_sigterm"] == [1, 2]
    report = retrains["report_after_sigterm"]
    assert "  STOPPED by SIGTERM while Trainer ran." in report
    assert "KILLED" not in report and "its error is in the run's log" not in report
    # The next run (the SIGKILLed one) found nothing of it to mend: only its own kill is named.
    assert f"pid {terminated['pid']} " not in retrains["span3"]["stderr"]


def test_a_mislabelled_span_is_not_blessed_and_serving_stays_at_version_2(retrains):
    third = retrains["span3"]
    assert third["status"] == 0  # a model not promoted is not a failure of the run
    outcome = third["outcome"]
    served = os.path.join(retrains["config"].serving_model_dir, "2")
    assert outcome.training["start"]["source"] == served
    assert outcome.blessed is False
    assert outcome.accuracy < outcome.baseline_accuracy
    assert outcome.pushed_to is None
    assert retrains["serving_after_span3"] == [1, 2]
    line = third["line"]
    assert line.startswith("span 3: not blessed (accuracy ")
    assert "against the last blessed model" in line
    assert line.endswith("; nothing pushed; serving version 2")


def test_no_new_span_trains_nothing_and_pushes_nothing(retrains):
    rerun = retrains["no_new_span"]
    assert rerun["status"] == 0
    assert (
        rerun["line"] == "span 3: no new data: nothing trained; nothing pushed; serving version 2"
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
    assert rerun["outcome"].pushed_to is None


def test_a_lost_metadata_store_opens_no_gate_and_overwrites_nothing(retrains):
    lost = retrains["lost_store"]
    assert lost["status"] == 0
    assert lost["run"].nodes["Trainer"].state == "COMPLETE"  # nothing cached to reuse
    outcome = lost["outcome"]
    # Judged against served version 2, found in the serving folder, not in the lost store.
    assert outcome.baseline_accuracy is not None
    assert outcome.blessed is False
    assert lost["line"].endswith("; nothing pushed; serving version 2")
    # Every output of the earlier runs was moved aside before this run wrote its own.
    [aside] = retrains["set_aside"]
    assert f"the outputs of the runs it recorded were moved to {aside}" in lost["stderr"]
    original, copy = retrains["span2_model"]
    moved = original.replace(retrains["config"].pipeline_root, str(aside))
    comparison = filecmp.dircmp(moved, copy)
    assert not (comparison.diff_files or comparison.left_only or comparison.right_only)


def test_a_new_class_starts_cold_and_says_why(retrains):
    fourth = retrains["span4"]
    assert retrains["added"] == [NEW_CLASS]
    outcome = fourth["outcome"]
    start = outcome.training["start"]
    assert start["warm"] is False
    assert "the classes changed since the blessed model" in start["reason"]
    assert f"(added {NEW_CLASS})" in start["reason"]
    assert outcome.training["class_names"] == [*DEFAULT_CLASSES, NEW_CLASS]
    # No earlier model has these classes: it is judged by the absolute bounds alone.
    assert outcome.baseline_accuracy is None
    assert "Cold start from the pretrained base: the classes changed" in fourth["line"]


def test_a_model_of_new_classes_is_not_pushed_over_the_served_one_unless_allowed(retrains):
    fourth = retrains["span4"]
    assert fourth["status"] == 0
    if fourth["outcome"].blessed:
        assert fourth["line"].endswith(
            f"; nothing pushed: its classes differ from served version 2's (added {NEW_CLASS}); "
            "serving version 2"
        )
    allowed = retrains["span4_allowed"]
    assert allowed["run"].nodes["Trainer"].state == "CACHED"
    assert allowed["run"].nodes["Pusher"].state == "COMPLETE"
    if fourth["outcome"].blessed:
        assert allowed["line"].endswith("; pushed version 3; serving version 3")


def test_what_others_left_in_the_serving_folder_is_ignored_and_a_dead_push_cleared(retrains):
    serving = Path(retrains["config"].serving_model_dir)
    blessed = retrains["span4"]["outcome"].blessed
    assert retrains["span4_allowed"]["status"] == 0
    assert versions(str(serving)) == ([1, 2, 3] if blessed else [1, 2])
    assert (serving / "README").exists() and (serving / "\u00b2").is_dir()
    assert retrains["leftover"].exists() == (not blessed)  # a push clears it


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
