"""The scheduled runs of backend_sequence.py, the stand-in backend as open-source KFP 2,
its Trainer tasks TFJobs on the stand-in Training Operator, and the verdicts on worse and
on rejected data, which only this mode runs."""

import json
from pathlib import Path

import pytest

from backend import OPEN_SOURCE, console_view
from backend_sequence import *  # noqa: F403  (the sequence and its tests, collected here)
from backend_sequence import KSERVE_NAME, found, trainer_log
from bad_records import defects
from imgclf.components.kserve_rollout import MANIFEST_FILE
from imgclf.modelstore.kserve import served_version


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
    for task in ("Trainer", "Evaluator", "ModelReport", "ServingCheck", "Pusher", "KServeRollout"):
        assert rejected.tasks[task].state == "not run"
    log = Path(rejected.tasks["DataGate"].log).read_text()
    assert "The data failed validation" in log
    # The data report ran first: the console shows why.
    page = console_view(sequence["backend"].artifact(rejected, "DataReport", "page"))["html"]
    assert "Rejected: nothing is trained on this data." in page
    assert all(name in page for name in defects())
    assert sequence["rejected_versions"] == [1, 2]


def test_each_pushed_version_is_rolled_out_to_kserve_as_a_revision(sequence):
    backend = sequence["backend"]
    first = backend.artifact(sequence["first"], "KServeRollout", "metrics")
    assert (first.metadata["serving_version"], first.metadata["applied"]) == (1.0, 1.0)
    assert first.metadata["key_figure"] == (
        f"version 1 serves all of InferenceService ml/{KSERVE_NAME}'s traffic "
        f"(revision {KSERVE_NAME}-predictor-00001)"
    )
    # The same version again: left as it is.
    again = backend.artifact(sequence["again"], "KServeRollout", "metrics")
    assert (
        again.metadata["key_figure"] == f"version 1 already is InferenceService ml/{KSERVE_NAME}'s"
    )
    service = sequence["new_span_kserve"]
    assert served_version(service) == 2
    predictor = service["status"]["components"]["predictor"]
    assert predictor["traffic"] == [
        {"revisionName": f"{KSERVE_NAME}-predictor-00002", "percent": 100, "latestRevision": True}
    ]
    assert predictor["previousRolledoutRevision"] == f"{KSERVE_NAME}-predictor-00001"
    # The manifest for GitOps, beside it.
    manifest = backend.artifact(sequence["new_span"], "KServeRollout", "manifest")
    assert "imgclf/serving-version: '2'" in Path(manifest.uri, MANIFEST_FILE).read_text()
    # The worse model was not pushed: version 2 stays.
    assert served_version(sequence["worse_kserve"]) == 2


def test_each_replica_of_the_tfjob_knew_its_place_and_only_the_chief_exported(sequence):
    [job] = sequence["first_jobs"]
    logs = {replica.type: replica.log.read_text() for replica in job.replicas}
    assert "this is chief:0 of 2 worker(s) {'chief': 1, 'worker': 1}" in logs["chief"]
    assert "this is worker:0 of 2 worker(s) {'chief': 1, 'worker': 1}" in logs["worker"]
    for log in logs.values():
        assert "[trainer] feature_extraction epoch 0 done" in log
    assert "Exported the model to" in logs["chief"]
    assert "Exported the model to" not in logs["worker"]
    assert "Worker done; the chief exports the model." in logs["worker"]
    assert json.loads(job.replicas[1].tf_config)["task"] == {"type": "worker", "index": 0}
    # The task's log has the chief's, and the job is gone once the task ended.
    log = trainer_log(sequence, "first")
    assert f"--- TFJob ml/{job.name}: the chief's log ---" in log
    assert f"TFJob ml/{job.name} succeeded: 2 workers trained." in log
    assert job.name in sequence["trainers"].deleted


def test_the_killed_worker_is_named_in_the_trainer_task_s_log(sequence):
    log = trainer_log(sequence, "killed")
    assert "has failed because 1 Worker replica(s) failed." in log
    assert "-worker-0 failed with exit code -9" in log
