import os
import subprocess
import sys

import pytest

from imgclf.pipeline.lock import PipelineBusyError, exclusive, holder, lock_path
from imgclf.pipeline.report import RunOutcome
from imgclf.pipeline.retrain import Summary, scheduled
from imgclf.pipeline.runs import NodeRun, PipelineRun
from imgclf.settings.config import load_config

SPANS = {"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
WARM = {"warm": True, "reason": "Warm start from the blessed model /m/2/Format-Serving."}


def _summary(
    outcome: RunOutcome, trainer="COMPLETE", before=(1, 2), after=(1, 2), error=None, **states
) -> Summary:
    nodes = {"Trainer": trainer, **states}
    run = PipelineRun("run", {node: NodeRun(node, state, 1.0) for node, state in nodes.items()})
    outcome.unfinished = {n: s for n, s in nodes.items() if s in ("FAILED", "RUNNING")}
    return Summary(3, run, outcome, list(before), list(after), error)


def test_the_summary_line_says_span_verdict_start_and_push():
    promoted = RunOutcome(
        "run", accuracy=0.9, baseline_accuracy=0.8, blessed=True, pushed_to="/s/m/3"
    )
    promoted.training = {"start": WARM}
    assert _summary(promoted, after=(1, 2, 3)).line() == (
        "span 3: blessed (accuracy 0.900 vs 0.800); "
        "Warm start from the blessed model /m/2/Format-Serving; pushed version 3; "
        "serving version 3"
    )
    held_back = RunOutcome(
        "run",
        accuracy=0.2,
        baseline_accuracy=0.8,
        blessed=False,
        failures=["sparse_categorical_accuracy changed by -0.600 against the last blessed model"],
    )
    held_back.training = {"start": WARM}
    line = _summary(held_back).line()
    assert line.startswith("span 3: not blessed (accuracy 0.200 vs 0.800: sparse_categorical")
    assert line.endswith("; nothing pushed; serving version 2")
    assert not _summary(held_back).failed


def test_no_new_data_and_rejected_data_are_said_in_one_line():
    cached = RunOutcome("run", accuracy=0.9, blessed=True, already_served=2)
    assert _summary(cached, trainer="CACHED").line() == (
        "span 3: no new data: nothing trained; nothing pushed: version 2 already is this model; "
        "serving version 2"
    )
    report = "Image validation: FAILED\n  FAIL: eval: 1 of 1 records bad (100.0%)\neval: 1 ..."
    rejected = RunOutcome("run", data_rejected=report)
    summary = _summary(rejected, trainer="FAILED", before=(), after=(), DataGate="FAILED")
    assert summary.line() == (
        "span 3: data rejected (Image validation: FAILED: eval: 1 of 1 records bad (100.0%)); "
        "nothing trained; nothing pushed; nothing served"
    )
    assert summary.failed


def test_what_was_pushed_is_read_from_the_serving_folder_not_from_caching():
    # The Trainer was cached, but the Pusher that failed last time pushed it this time.
    retried = RunOutcome("run", accuracy=0.9, blessed=True, pushed_to="/s/m/1")
    line = _summary(retried, trainer="CACHED", before=(), after=(1,)).line()
    assert line == (
        "span 3: no new data: nothing trained; blessed (accuracy 0.900, no blessed model of "
        "these classes before); pushed version 1; serving version 1"
    )
    # MLMD says pushed, the folder does not: the folder wins.
    claimed = RunOutcome("run", accuracy=0.9, blessed=True, pushed_to="/s/m/3")
    claimed.training = {"start": WARM}
    assert _summary(claimed).line().endswith("; nothing pushed; serving version 2")


def test_a_failed_push_fails_the_run_and_says_why():
    blessed = RunOutcome("run", accuracy=0.9, baseline_accuracy=0.8, blessed=True)
    blessed.training = {"start": WARM}
    summary = _summary(
        blessed, error="Failed to create a directory: /s/m; Not a directory", Pusher="FAILED"
    )
    assert summary.failed
    assert summary.line() == (
        "span 3: FAILED in Pusher: Failed to create a directory: /s/m; Not a directory; "
        "nothing pushed; serving version 2"
    )


def test_a_blessed_model_that_failed_the_serving_check_is_said_not_pushed():
    slow = RunOutcome("run", accuracy=0.9, baseline_accuracy=0.8, blessed=True)
    slow.training = {"start": WARM}
    slow.serving_check = {
        "load_seconds": 1.5,
        "warmup_ms": [200.0, 120.0],
        "latency_ms": [3.0, 90.0],
        "passed": False,
        "reason": "the slowest request took 90.0 ms (serving.max_latency_ms 50)",
    }
    assert (
        _summary(slow)
        .line()
        .endswith(
            "; nothing pushed: the serving check failed (the slowest request took 90.0 ms "
            "(serving.max_latency_ms 50)); serving version 2"
        )
    )
    slow.training = None  # the report's training lines are not this test's
    report = slow.describe(0.5)
    assert (
        "  Serving check: loaded in 1.5 s; 2 warmup requests (first pass 320 ms), then median "
        "90.0 ms, slowest 90.0 ms; FAILED: the slowest request took 90.0 ms "
        "(serving.max_latency_ms 50)"
    ) in report
    assert "  Not pushed: it failed the serving check." in report


def test_scheduled_runs_warm_start_by_default_when_data_has_spans(tmp_path):
    assert scheduled(load_config(SPANS)).training.warm_start is True
    off = load_config({**SPANS, "training.warm_start": False})
    assert scheduled(off).training.warm_start is False
    assert scheduled(load_config()).training.warm_start is None


def test_a_second_run_refuses_while_the_first_holds_the_lock(tmp_path):
    config = load_config({"output_dir": str(tmp_path)})
    assert holder(config) is None
    busy = pytest.raises(PipelineBusyError, match=r"pid \d+ on .* holds .*\.db\.lock")
    with exclusive(config, wait=False) as killed, busy, exclusive(config, wait=False):
        assert killed is None
        assert holder(config).startswith(f"pid {os.getpid()} on ")
    assert holder(config) is None
    with open(lock_path(config)) as released:  # a run that ended empties it
        assert released.read() == ""


def test_a_killed_holder_is_named_by_the_next_run_which_takes_the_lock_over(tmp_path):
    config = load_config({"output_dir": str(tmp_path)})
    holding = subprocess.Popen(
        [sys.executable, "-c", HOLD_THEN_WAIT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert holding.stdout.readline().strip() == "holding"  # no sleep: it says when
        assert holder(config).startswith(f"pid {holding.pid} on ")
    finally:
        holding.kill()
        holding.wait(timeout=60)
    assert holder(config) is None  # the kernel released the lock of the dead process
    with exclusive(config, wait=False) as killed:
        assert killed.startswith(f"pid {holding.pid} on ")


# A run that holds the lock and then blocks on its standard input until killed.
HOLD_THEN_WAIT = """
import sys
from imgclf.pipeline.lock import exclusive
from imgclf.settings.config import load_config
with exclusive(load_config({"output_dir": sys.argv[1]}), wait=False):
    print("holding", flush=True)
    sys.stdin.read()
"""
