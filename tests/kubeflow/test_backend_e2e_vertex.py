"""The scheduled runs of backend_sequence.py, the stand-in backend as Vertex AI Pipelines,
its Trainer tasks CustomJobs on the stand-in Vertex AI Training (vertex_training.py)."""

import json
from pathlib import Path

import pytest
import tensorflow as tf

from backend import VERTEX
from backend_sequence import *  # noqa: F403  (the sequence and its tests, collected here)
from backend_sequence import TENSORBOARD, trained, trainer_log


@pytest.fixture(scope="module")
def mode() -> str:
    return VERTEX


def test_the_custom_job_has_a_pool_per_role_and_the_task_names_it(sequence):
    [job] = sequence["first_jobs"]
    pools = job.body["jobSpec"]["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == ["1", "1"]
    assert pools[0]["machineSpec"] == {"machineType": "n1-standard-8"}
    # Vertex AI Pipelines cancels the job this output names.
    resources = json.loads(sequence["first"].tasks["Trainer"].parameters["gcp_resources"])
    uri = f"{sequence['trainers'].endpoint}/v1/{job.name}"
    assert resources == {"resources": [{"resourceType": "CustomJob", "resourceUri": uri}]}
    assert f"CustomJob {job.name} succeeded: 2 workers trained." in trainer_log(sequence, "first")


def test_the_trainer_logged_where_vertex_ai_tensorboard_reads(sequence):
    [job] = sequence["first_jobs"]
    model_run = sequence["backend"].artifact(sequence["first"], "Trainer", "model_run").uri
    assert job.body["jobSpec"]["tensorboard"] == TENSORBOARD
    base = job.body["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"]
    assert base == f"{model_run}/vertex"
    # Both phases' epochs, in the folder Vertex AI gave the replicas, and in the model run.
    epochs = set(range(len(trained(sequence, "first")["history"]["epoch"])))
    for folder in (Path(base) / "logs", Path(model_run)):
        steps = set()
        for event_file in (folder / "validation").glob("events.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                if any(value.tag == "epoch_accuracy" for value in event.summary.value):
                    steps.add(event.step)
        assert steps == epochs, folder


def test_each_replica_had_vertex_s_cluster_spec_and_knew_its_place(sequence):
    [job] = sequence["first_jobs"]
    chief, worker = job.replicas
    assert json.loads(chief.env["CLUSTER_SPEC"])["task"] == {"type": "workerpool0", "index": 0}
    assert json.loads(worker.env["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}
    assert "this is chief:0 of 2 worker(s)" in chief.log.read_text()
    assert "this is worker:0 of 2 worker(s)" in worker.log.read_text()
    assert "Worker done; the chief exports the model." in worker.log.read_text()


def test_the_killed_worker_fails_the_job_and_the_task_with_vertex_s_reason(sequence):
    log = trainer_log(sequence, "killed")
    assert "ended JOB_STATE_FAILED: The replica workerpool1-0 exited with a non-zero status" in log
    states = [job.state for job in sequence["killed_jobs"]]
    assert states == ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"]
