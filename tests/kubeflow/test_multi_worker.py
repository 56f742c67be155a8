"""More than one machine on open-source KFP: the compiled Trainer task, its TFJob, and its faults.

The launcher runs as the Trainer task would, a process of its own, and speaks
through the `kubernetes` client to the stand-in Training Operator
(training_operator.py). The replicas' training itself is run end to end in
test_multi_worker_e2e.py.
"""

import json
import queue
import signal
import subprocess
import sys
import threading

import pytest
from kubernetes import client
from test_runner import cluster_config, executor_of
from training_operator import training_operator  # noqa: F401  (a fixture)

from backend import REPO, _image_environment
from imgclf.kubeflow import multi_worker
from imgclf.kubeflow.entrypoint import ENTRYPOINT
from imgclf.kubeflow.runner import compile_pipeline
from imgclf.kubeflow.tfjob import Replicas, tfjob_manifest
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.config import ConfigError

PROCESS_DEADLINE_SECONDS = 120


@pytest.fixture(scope="module")
def spec(remote_data, tmp_path_factory) -> dict:
    config = cluster_config(**{"kubeflow.trainer.workers": 3, "kubeflow.namespace": "ml"})
    return compile_pipeline(config, str(tmp_path_factory.mktemp("mw") / "pipeline.yaml"))


def job_settings(container: dict) -> multi_worker.JobSettings:
    args = container["args"]
    return multi_worker.JobSettings.model_validate_json(args[args.index(multi_worker.JOB_ARG) + 1])


def test_the_trainer_task_launches_the_workers_and_asks_for_nothing_itself(spec):
    container = executor_of(spec, "Trainer")["container"]
    assert container["command"] == multi_worker.COMMAND
    assert "resources" not in container
    settings = job_settings(container)
    assert (settings.workers, settings.namespace) == (3, "ml")
    assert settings.limits == {"cpu": "8", "memory": "32G", "nvidia.com/gpu": "4"}
    assert settings.image == container["image"]
    # Every other task is as with one worker.
    assert executor_of(spec, "Evaluator")["container"]["command"] == ENTRYPOINT


def test_the_tfjob_has_one_chief_and_the_other_workers_each_with_the_trainer_s_resources():
    replicas = Replicas(
        image="registry.example.com/image-classifier:test",
        command=[*ENTRYPOINT, "--executor_class_path", "x"],
        workers=3,
        limits={"nvidia.com/gpu": "2"},
        active_deadline_seconds=3600,
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="run-trainer-pod", uid="1234"),
        spec=client.V1PodSpec(containers=[], service_account_name="pipeline-runner"),
    )
    manifest = tfjob_manifest("job", "ml", replicas, pod)
    specs = manifest["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in specs.items()} == {"Chief": 1, "Worker": 2}
    for spec in specs.values():
        assert spec["restartPolicy"] == "Never"
        template = spec["template"]["spec"]
        assert template["serviceAccountName"] == "pipeline-runner"
        [container] = template["containers"]
        # The operator writes TF_CONFIG into the container of this name only.
        assert container["name"] == "tensorflow"
        assert container["command"] == replicas.command
        assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == 3600


def test_workers_below_one_are_refused_naming_the_setting():
    with pytest.raises(ConfigError, match=r"kubeflow\.trainer\.workers: Input should be greater"):
        cluster_config(**{"kubeflow.trainer.workers": 0})


def test_several_workers_on_vertex_are_refused_until_its_launcher_exists():
    vertex = {"kubeflow.backend": "vertex", "kubeflow.trainer.gpu_type": "NVIDIA_L4"}
    with pytest.raises(ConfigError, match=r"trainer\.workers: more than one worker runs on open"):
        cluster_config(**vertex, **{"kubeflow.trainer.workers": 2})


def test_a_local_run_with_several_workers_is_refused_naming_the_setting(sample_data):
    config = cluster_config(**{"kubeflow.trainer.workers": 2, "data.root": sample_data})
    with pytest.raises(ConfigError, match=r"kubeflow\.trainer\.workers is 2, but a run here"):
        create_pipeline(config)


def launch(tmp_path, **settings) -> subprocess.Popen:
    """The Trainer task's launcher with a minimal executor input, as the KFP launcher starts it."""
    executor_input = {
        "inputs": {},
        "outputs": {
            "artifacts": {"model_run": {"artifacts": [{"uri": str(tmp_path / "model_run")}]}},
            "outputFile": str(tmp_path / "task" / "output_metadata.json"),
        },
    }
    job = {
        "image": "registry.example.com/image-classifier:test",
        "workers": 2,
        "limits": {},
        "start_deadline_seconds": 600,
        "job_deadline_hours": 1,
        **settings,
    }
    command = [
        sys.executable,
        "-m",
        "imgclf.kubeflow.multi_worker",
        "--executor_class_path",
        "imgclf.components.trainer.Executor",
        "--json_serialized_invocation_args",
        json.dumps(executor_input),
        multi_worker.JOB_ARG,
        json.dumps(job),
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=_image_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen) -> str:
    """The process's output once it has ended; killed, and the test failed, past the deadline."""
    try:
        return process.communicate(timeout=PROCESS_DEADLINE_SECONDS)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(
            f"still running after {PROCESS_DEADLINE_SECONDS} s:\n{process.communicate()[0]}"
        )


def wait_for_line(process: subprocess.Popen, text: str) -> str:
    """The first line of the process's output with `text`; fails after the deadline."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
            if text in line:
                return
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = lines.get(timeout=PROCESS_DEADLINE_SECONDS)
        assert line, f"the process ended without printing {text!r}"
        if text in line:
            return line


def test_a_job_that_never_starts_fails_the_task_with_the_cluster_s_reason(
    training_operator,  # noqa: F811
    tmp_path,
):
    training_operator.pending_reason = ("ErrImagePull", "pull access denied for image-classifier")
    try:
        process = launch(tmp_path, start_deadline_seconds=1)
        output = finish(process)
    finally:
        training_operator.pending_reason = None
    assert process.returncode == 1, output
    assert "were not all running after 1 s (kubeflow.trainer.start_deadline_seconds)" in output
    assert "-chief-0: ErrImagePull: pull access denied for image-classifier" in output
    assert "Traceback" not in output
    assert len([name for name in training_operator.deleted if name in output]) == 1
    assert not (tmp_path / "task" / "output_metadata.json").exists()


def test_cancelling_the_task_deletes_its_tfjob(training_operator, tmp_path):  # noqa: F811
    training_operator.pending_reason = ("ContainerCreating", "")
    try:
        process = launch(tmp_path)
        line = wait_for_line(process, "Created TFJob ml/")
        created = line.split("Created TFJob ml/")[1].split(":")[0]
        process.send_signal(signal.SIGTERM)
        output = finish(process)
    finally:
        training_operator.pending_reason = None
    assert process.returncode == 128 + signal.SIGTERM, output
    assert f"Stopped by SIGTERM: deleting TFJob {created}" in output
    assert created in training_operator.deleted
