"""Where a process stands in a cluster, from TF_CONFIG as the Training Operator or Vertex AI
write it (the two-process runs: test_task.py and tests/kubeflow/backend_sequence.py)."""

import json

import pytest

from imgclf.trainer.distribution import cluster_layout, is_chief, num_workers

CHIEF_AND_WORKER = {"chief": ["a:1"], "worker": ["b:1"]}
WORKERS_ONLY = {"worker": ["a:1", "b:1"]}


@pytest.mark.parametrize(
    "cluster, task, chief",
    [
        (CHIEF_AND_WORKER, {"type": "chief", "index": 0}, True),
        (CHIEF_AND_WORKER, {"type": "worker", "index": 0}, False),
        # Without a chief, worker 0 writes the shared outputs (TensorFlow's own convention).
        (WORKERS_ONLY, {"type": "worker", "index": 0}, True),
        (WORKERS_ONLY, {"type": "worker", "index": 1}, False),
    ],
)
def test_only_the_chief_or_else_worker_0_writes_the_shared_outputs(
    monkeypatch, cluster, task, chief
):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert is_chief() is chief
    assert num_workers() == 2
    assert cluster_layout()["task"] == f"{task['type']}:{task['index']}"


def test_without_tf_config_a_process_is_a_cluster_of_one(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief() and num_workers() == 1
    assert cluster_layout() == {"task": "chief:0", "workers": 1, "machines": {"chief": 1}}
