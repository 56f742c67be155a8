"""The scheduled runs of backend_sequence.py, the stand-in backend as open-source KFP 2,
and the verdicts on worse and on rejected data, which only this mode runs."""

from pathlib import Path

import pytest

from backend import OPEN_SOURCE, console_view
from backend_sequence import *  # noqa: F403  (the sequence and its tests, collected here)
from backend_sequence import found
from bad_records import defects


@pytest.fixture(scope="module")
def mode() -> str:
    return OPEN_SOURCE


def test_a_worse_model_is_not_pushed(sequence):
    worse = sequence["worse"]
    assert worse.succeeded
    assert "Trainer" in worse.executed()
    assert found(sequence, "worse", "warm_start_version") == 2
    blessing = sequence["backend"].artifact(worse, "Evaluator", "blessing")
    assert blessing.metadata["blessed"] == 0.0
    pushed = sequence["backend"].artifact(worse, "Pusher", "pushed_model")
    assert pushed.metadata["pushed"] == 0.0
    assert sequence["worse_versions"] == [1, 2]


def test_a_rejected_dataset_trains_nothing(sequence):
    rejected = sequence["rejected"]
    assert not rejected.succeeded
    assert rejected.tasks["DataGate"].state == "failed"
    for task in ("Trainer", "Evaluator", "ModelReport", "ServingCheck", "Pusher"):
        assert rejected.tasks[task].state == "not run"
    log = Path(rejected.tasks["DataGate"].log).read_text()
    assert "The data failed validation" in log
    # The data report ran first: the console shows why.
    page = console_view(sequence["backend"].artifact(rejected, "DataReport", "page"))["html"]
    assert "Rejected: nothing is trained on this data." in page
    assert all(name in page for name in defects())
    assert sequence["rejected_versions"] == [1, 2]
