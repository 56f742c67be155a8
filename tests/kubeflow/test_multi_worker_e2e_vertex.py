"""Two workers end to end on Vertex AI: the compiled pipeline on the stand-in KFP backend in
Vertex mode, its Trainer task launching a CustomJob on the stand-in Vertex AI Training
(vertex_training.py), each replica a real process.

Two runs share one module fixture:
1. first: pool 0's chief and pool 1's worker train together; the chief's
   model is evaluated and pushed; the task's gcp_resources names the job;
2. killed: the worker is killed during its first epoch: Vertex fails the job
   naming the replica, the Trainer task fails with that reason, nothing is pushed.
That the next run trains to the end is the backend's and the Trainer task's,
whatever launched the job: test_multi_worker_e2e.py shows it with a TFJob.
"""

import json
from pathlib import Path

import pytest
import tensorflow as tf
from test_multi_worker_e2e import AFTER_TRAINER, KILLED_SCHEDULE, trainer_log, write_span_1

from backend import REPO, VERTEX, Backend
from backend_sequence import compiled
from imgclf.modelstore.serving_folder import versions
from imgclf.trainer.export import read_summary
from vertex_training import PROJECT, REGION

pytestmark = pytest.mark.e2e
TENSORBOARD = f"projects/{PROJECT}/locations/{REGION}/tensorboards/42"


@pytest.fixture(scope="module")
def runs(vertex_training, backbone_weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("multi-worker-vertex")
    write_span_1(root)
    spec, config = compiled(
        VERTEX,
        root,
        backbone_weights,
        **{
            "kubeflow.project": PROJECT,
            "kubeflow.region": REGION,
            "kubeflow.api_endpoint": vertex_training.endpoint,
            "kubeflow.trainer.workers": 2,
            "kubeflow.trainer.start_deadline_seconds": 300,
            "kubeflow.trainer.tensorboard": TENSORBOARD,
        },
    )
    backend = Backend(VERTEX, work_dir=REPO)
    runs = {"backend": backend, "config": config, "vertex": vertex_training}
    runs["first"] = backend.run(spec, config.pipeline_root)
    runs["first_jobs"] = list(vertex_training.jobs.values())
    runs["first_versions"] = versions(config.serving_model_dir)
    vertex_training.kill_when = {"workerpool1-0": "epoch 0 done"}
    runs["killed"] = backend.run(spec, config.pipeline_root, KILLED_SCHEDULE)
    runs["killed_versions"] = versions(config.serving_model_dir)
    vertex_training.kill_when = {}
    runs["jobs"] = list(vertex_training.jobs.values())
    for name in ("first", "killed"):
        seconds = {task: round(t.seconds, 1) for task, t in runs[name].tasks.items() if t.seconds}
        print(f"multi-worker vertex {name}: {seconds}")  # per-task timings (-s)
    return runs


def test_a_custom_job_of_two_workers_trains_and_its_model_is_pushed(runs):
    first = runs["first"]
    assert first.succeeded, trainer_log(first)
    assert runs["first_versions"] == [1]
    [job] = runs["first_jobs"]
    pools = job.body["jobSpec"]["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == ["1", "1"]
    assert pools[0]["machineSpec"] == {"machineType": "n1-standard-8"}
    model = runs["backend"].artifact(first, "Trainer", "model")
    summary = read_summary(str(Path(model.uri) / "Format-Serving"))
    assert (summary["strategy"], summary["workers"]) == ("MultiWorkerMirroredStrategy", 2)
    assert summary["cluster"] == {"chief": 1, "worker": 1}
    assert json.loads(model.metadata["class_names"]) == summary["class_names"]
    # Vertex AI Pipelines cancels the job this output names.
    resources = json.loads(first.tasks["Trainer"].parameters["gcp_resources"])
    uri = f"{runs['vertex'].endpoint}/v1/{job.name}"
    assert resources == {"resources": [{"resourceType": "CustomJob", "resourceUri": uri}]}
    assert f"CustomJob {job.name} succeeded: 2 workers trained." in trainer_log(first)


def test_the_trainer_logged_where_vertex_ai_tensorboard_reads(runs):
    [job] = runs["first_jobs"]
    model_run = runs["backend"].artifact(runs["first"], "Trainer", "model_run").uri
    assert job.body["jobSpec"]["tensorboard"] == TENSORBOARD
    base = job.body["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"]
    assert base == f"{model_run}/vertex"
    # Both phases' epochs, in the folder Vertex AI gave the replicas, and in the model run.
    for folder in (Path(base) / "logs", Path(model_run)):
        steps = set()
        for event_file in (folder / "validation").glob("events.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                if any(value.tag == "epoch_accuracy" for value in event.summary.value):
                    steps.add(event.step)
        assert steps == set(range(len(read_summary_of(runs)["history"]["epoch"]))), folder


def read_summary_of(runs) -> dict:
    model = runs["backend"].artifact(runs["first"], "Trainer", "model")
    return read_summary(str(Path(model.uri) / "Format-Serving"))


def test_each_replica_had_vertex_s_cluster_spec_and_knew_its_place(runs):
    [job] = runs["first_jobs"]
    chief, worker = job.replicas
    assert json.loads(chief.env["CLUSTER_SPEC"])["task"] == {"type": "workerpool0", "index": 0}
    assert json.loads(worker.env["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}
    assert "this is chief:0 of 2 worker(s)" in chief.log.read_text()
    assert "this is worker:0 of 2 worker(s)" in worker.log.read_text()
    assert "Worker done; the chief exports the model." in worker.log.read_text()


def test_a_killed_worker_fails_the_job_and_the_task_with_vertex_s_reason(runs):
    killed = runs["killed"]
    assert killed.tasks["Trainer"].state == "failed"
    log = trainer_log(killed)
    assert "ended JOB_STATE_FAILED: The replica workerpool1-0 exited with a non-zero status" in log
    for task in AFTER_TRAINER:
        assert killed.tasks[task].state == "not run", task
    assert runs["killed_versions"] == [1]
    assert [job.state for job in runs["jobs"]] == ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"]
