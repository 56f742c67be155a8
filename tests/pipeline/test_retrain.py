import pytest

from imgclf.pipeline.report import RunOutcome
from imgclf.pipeline.retrain import RetrainBusyError, Summary, exclusive, lock_path, scheduled
from imgclf.pipeline.runs import NodeRun, PipelineRun
from imgclf.settings.config import load_config

SPANS = {"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
WARM = {"warm": True, "reason": "Warm start from the blessed model /m/2/Format-Serving."}


def _summary(outcome: RunOutcome, trainer_state="COMPLETE", serving=2) -> Summary:
    run = PipelineRun("run", {"Trainer": NodeRun("Trainer", trainer_state, 1.0)})
    return Summary(span=3, run=run, outcome=outcome, serving_version=serving)


def test_the_summary_line_says_span_verdict_start_and_push():
    promoted = RunOutcome(
        "run", accuracy=0.9, baseline_accuracy=0.8, blessed=True, pushed_to="/s/m/3"
    )
    promoted.training = {"start": WARM}
    assert _summary(promoted).line() == (
        "span 3: blessed (accuracy 0.900 vs 0.800); "
        "Warm start from the blessed model /m/2/Format-Serving; pushed version 3"
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
    assert line.endswith("; not pushed; serving version 2")
    assert not _summary(held_back).failed


def test_no_new_data_and_rejected_data_are_said_in_one_line():
    cached = RunOutcome("run", accuracy=0.9, blessed=True, already_served=2)
    assert _summary(cached, trainer_state="CACHED").line() == (
        "span 3: no new data: nothing trained, nothing pushed; serving version 2"
    )
    rejected = RunOutcome("run", data_rejected="Image validation: FAILED\n  FAIL: ...")
    summary = _summary(rejected, trainer_state="FAILED", serving=None)
    assert summary.line() == (
        "span 3: data rejected (Image validation: FAILED); nothing trained or pushed; "
        "nothing served yet"
    )
    assert summary.failed


def test_scheduled_runs_warm_start_by_default_when_data_has_spans(tmp_path):
    assert scheduled(load_config(SPANS)).training.warm_start is True
    off = load_config({**SPANS, "training.warm_start": False})
    assert scheduled(off).training.warm_start is False
    assert scheduled(load_config()).training.warm_start is None


def test_a_second_run_refuses_while_the_first_holds_the_lock(tmp_path):
    config = load_config({"output_dir": str(tmp_path)})
    busy = pytest.raises(RetrainBusyError, match=r"pid \d+ holds .*\.db\.lock")
    with exclusive(config, wait=False), busy, exclusive(config, wait=False):
        pass
    with exclusive(config, wait=False), open(lock_path(config)) as held:  # free again
        assert held.read().startswith("pid ")
