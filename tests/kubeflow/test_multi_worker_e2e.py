"""Two workers end to end: the compiled pipeline on the stand-in KFP backend (open-source mode),
its Trainer task launching a TFJob on the stand-in Training Operator, each replica a real process.

Three runs share one module fixture:
1. first: the Chief and the Worker train together under MultiWorkerMirroredStrategy;
   only the chief exports; the Evaluator and the Pusher take that model (version 1);
2. killed: the same data with another schedule (so the Trainer is not reused
   from KFP's cache); the Worker is killed during its first epoch: the
   Trainer task fails naming it, and nothing after it runs;
3. again: the same run once more trains to the end and is evaluated.
"""

import json
from pathlib import Path

import pytest

from backend import OPEN_SOURCE, REPO, Backend
from backend_sequence import compiled
from imgclf.imagedata.sample import write_sample_span
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.modelstore.serving_folder import versions
from imgclf.settings.data import DataConfig
from imgclf.trainer.export import read_summary
from quick_training import SPAN_PATTERNS

pytestmark = pytest.mark.e2e

KILLED_SCHEDULE = {"phase2_epochs": 2}
AFTER_TRAINER = ("Evaluator", "ModelReport", "ServingCheck", "Pusher")


def write_span_1(root: Path) -> None:
    """The tiny data of every run here, and its schema, under `root`/data."""
    data = str(root / "data")
    write_sample_span(data, 1, train_per_class=8, eval_per_class=16, num_shards=2)
    data_config = DataConfig(root=data, **{k.split(".")[1]: v for k, v in SPAN_PATTERNS.items()})
    write_schema(make_schema(data_config), data_config.schema_path)


@pytest.fixture(scope="module")
def runs(training_operator, backbone_weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("multi-worker")
    write_span_1(root)
    spec, config = compiled(
        OPEN_SOURCE,
        root,
        backbone_weights,
        **{"kubeflow.trainer.workers": 2, "kubeflow.trainer.start_deadline_seconds": 300},
    )
    backend = Backend(OPEN_SOURCE, work_dir=REPO)
    runs = {"backend": backend, "config": config, "operator": training_operator}

    runs["first"] = backend.run(spec, config.pipeline_root)
    runs["first_jobs"] = list(training_operator.jobs.values())
    runs["first_versions"] = versions(config.serving_model_dir)
    training_operator.kill_when = {"-worker-0": "epoch 0 done"}
    runs["killed"] = backend.run(spec, config.pipeline_root, KILLED_SCHEDULE)
    runs["killed_versions"] = versions(config.serving_model_dir)
    training_operator.kill_when = {}
    runs["again"] = backend.run(spec, config.pipeline_root, KILLED_SCHEDULE)
    for name in ("first", "killed", "again"):
        seconds = {task: round(t.seconds, 1) for task, t in runs[name].tasks.items() if t.seconds}
        print(f"multi-worker {name}: {seconds}")  # per-task timings (-s)
    return runs


def trainer_log(run) -> str:
    return Path(run.tasks["Trainer"].log).read_text()


def test_two_workers_train_together_and_the_chief_s_model_is_evaluated_and_pushed(runs):
    first = runs["first"]
    assert first.succeeded, trainer_log(first)
    assert runs["first_versions"] == [1]
    model = runs["backend"].artifact(first, "Trainer", "model")
    summary = read_summary(str(Path(model.uri) / "Format-Serving"))
    assert summary["strategy"] == "MultiWorkerMirroredStrategy"
    assert (summary["workers"], summary["replicas_per_worker"]) == (2, 1)
    assert summary["num_replicas"] == 2
    assert summary["global_batch_size"] == 2 * 16
    assert summary["cluster"] == {"chief": 1, "worker": 1}
    # The Model's properties came from the chief's executor output, through the task.
    assert json.loads(model.metadata["class_names"]) == summary["class_names"]
    evaluated = first.tasks["Evaluator"].inputs["artifacts"]["model"]["artifacts"][0]
    assert evaluated["uri"] == model.uri
    blessing = runs["backend"].artifact(first, "Evaluator", "blessing")
    assert blessing.metadata["blessed"] == 1.0


def test_each_replica_knew_its_place_and_only_the_chief_exported(runs):
    [job] = runs["first_jobs"]
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
    log = trainer_log(runs["first"])
    assert f"--- TFJob ml/{job.name}: the chief's log ---" in log
    assert f"TFJob ml/{job.name} succeeded: 2 workers trained." in log
    assert job.name in runs["operator"].deleted


def test_a_killed_worker_fails_the_trainer_task_naming_it_and_nothing_is_pushed(runs):
    killed = runs["killed"]
    assert killed.tasks["Trainer"].state == "failed"
    log = trainer_log(killed)
    assert "has failed because 1 Worker replica(s) failed." in log
    assert "-worker-0 failed with exit code -9" in log
    for task in AFTER_TRAINER:
        assert killed.tasks[task].state == "not run", task
    assert runs["killed_versions"] == [1]


def test_the_next_run_trains_to_the_end(runs):
    again = runs["again"]
    assert again.succeeded, trainer_log(again)
    assert again.tasks["Trainer"].state == "executed"
    model = runs["backend"].artifact(again, "Trainer", "model")
    summary = read_summary(str(Path(model.uri) / "Format-Serving"))
    assert summary["workers"] == 2
    assert len(summary["phases"][1]["epochs"]) == KILLED_SCHEDULE["phase2_epochs"]
    assert again.tasks["Evaluator"].state == "executed"
