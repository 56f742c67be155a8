"""More than one machine: the compiled Trainer task, its TFJob or CustomJob, and their faults.

The launcher runs as the Trainer task would, a process of its own, and speaks
through the `kubernetes` client to the stand-in Training Operator
(training_operator.py), or through google-cloud-aiplatform to the stand-in
Vertex AI Training (vertex_training.py). The replicas' training itself runs
end to end in the backend sequences (backend_sequence.py: every Trainer task there is a job
of two workers).
"""

import json
import queue
import re
import signal
import subprocess
import sys
import threading

import pytest
from kubernetes import client
from test_runner import cluster_config, executor_of

from backend import REPO, _image_environment
from imgclf.kubeflow import multi_worker
from imgclf.kubeflow.custom_job import custom_job
from imgclf.kubeflow.entrypoint import ENTRYPOINT
from imgclf.kubeflow.runner import compile_pipeline
from imgclf.kubeflow.tfjob import tfjob_manifest
from imgclf.kubeflow.worker_job import JobSettings
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.settings.base import ConfigError

PROCESS_DEADLINE_SECONDS = 120


@pytest.fixture(scope="module")
def spec(remote_data, tmp_path_factory) -> dict:
    config = cluster_config(**{"kubeflow.trainer.workers": 3, "kubeflow.namespace": "ml"})
    return compile_pipeline(config, str(tmp_path_factory.mktemp("mw") / "pipeline.yaml"))


def job_settings(container: dict) -> JobSettings:
    args = container["args"]
    return JobSettings.model_validate_json(args[args.index(multi_worker.JOB_ARG) + 1])


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


def job_settings_of(**settings) -> JobSettings:
    return JobSettings(
        **{
            "backend": "kfp",
            "image": "registry.example.com/image-classifier:test",
            "workers": 3,
            "start_deadline_seconds": 600,
            "job_deadline_hours": 1,
            **settings,
        }
    )


def test_the_tfjob_has_one_chief_and_the_other_workers_each_with_the_trainer_s_resources():
    settings = job_settings_of(limits={"nvidia.com/gpu": "2"})
    command = [*ENTRYPOINT, "--executor_class_path", "x"]
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="run-trainer-pod", uid="1234"),
        spec=client.V1PodSpec(containers=[], service_account_name="pipeline-runner"),
    )
    manifest = tfjob_manifest("job", "ml", settings, command, pod)
    specs = manifest["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in specs.items()} == {"Chief": 1, "Worker": 2}
    for spec in specs.values():
        assert spec["restartPolicy"] == "Never"
        template = spec["template"]["spec"]
        assert template["serviceAccountName"] == "pipeline-runner"
        [container] = template["containers"]
        # The operator writes TF_CONFIG into the container of this name only.
        assert container["name"] == "tensorflow"
        assert container["command"] == command
        assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == 3600


def test_the_custom_job_has_the_chief_in_pool_0_and_the_other_workers_in_pool_1():
    settings = job_settings_of(
        backend="vertex",
        machine_type="a2-highgpu-1g",
        accelerator_type="NVIDIA_TESLA_A100",
        accelerator_count=1,
        service_account="trainer@my-project.iam.gserviceaccount.com",
    )
    body = custom_job(settings, ["python", "-m", "x"], "imgclf-trainer")
    pools = body["job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 2]
    for pool in pools:
        assert pool["machine_spec"] == {
            "machine_type": "a2-highgpu-1g",
            "accelerator_type": "NVIDIA_TESLA_A100",
            "accelerator_count": 1,
        }
        assert pool["container_spec"]["image_uri"] == settings.image
        assert pool["container_spec"]["command"] == ["python", "-m", "x"]
    assert body["job_spec"]["service_account"] == settings.service_account
    assert body["job_spec"]["scheduling"]["timeout"].seconds == 3600


def test_on_vertex_the_trainer_task_launches_a_custom_job_and_names_it_for_cancelling(
    remote_data, tmp_path
):
    vertex = cluster_config(
        **{
            "kubeflow.backend": "vertex",
            "kubeflow.project": "my-project",
            "kubeflow.region": "europe-west4",
            "kubeflow.trainer.gpu_type": "NVIDIA_L4",
            "kubeflow.trainer.gpus": 2,
            "kubeflow.trainer.workers": 4,
            "kubeflow.trainer.machine_type": "g2-standard-24",
        }
    )
    spec = compile_pipeline(vertex, str(tmp_path / "vertex.yaml"))
    container = executor_of(spec, "Trainer")["container"]
    assert container["command"] == multi_worker.COMMAND
    assert "resources" not in container
    settings = job_settings(container)
    assert (settings.backend, settings.workers, settings.machine_type) == (
        "vertex",
        4,
        "g2-standard-24",
    )
    assert (settings.accelerator_type, settings.accelerator_count) == ("NVIDIA_L4", 2)
    assert (settings.project, settings.region) == ("my-project", "europe-west4")
    trainer = spec["components"]["Trainer"]["outputDefinitions"]["parameters"]
    assert trainer["gcp_resources"] == {"parameterType": "STRING"}


def test_a_custom_job_with_tensorboard_has_its_base_output_folder():
    settings = job_settings_of(
        backend="vertex",
        machine_type="n1-standard-8",
        tensorboard="projects/p/locations/r/tensorboards/42",
        base_output_dir="gs://b/root/Trainer/model_run/vertex",
    )
    spec = custom_job(settings, ["python"], "imgclf-trainer")["job_spec"]
    assert spec["tensorboard"] == "projects/p/locations/r/tensorboards/42"
    assert spec["base_output_directory"] == {
        "output_uri_prefix": "gs://b/root/Trainer/model_run/vertex"
    }
    assert "tensorboard" not in custom_job(job_settings_of(), ["python"], "x")["job_spec"]


@pytest.mark.parametrize(
    "settings",
    [
        {"kubeflow.trainer.workers": 2},
        {"kubeflow.backend": "vertex", "kubeflow.trainer.workers": 1},
    ],
    ids=["open-source", "one-worker"],
)
def test_tensorboard_outside_a_vertex_custom_job_is_refused_naming_the_setting(settings):
    tensorboard = {"kubeflow.trainer.tensorboard": "projects/p/locations/r/tensorboards/42"}
    with pytest.raises(ConfigError, match=r"kubeflow.*trainer\.tensorboard: Vertex AI logs"):
        cluster_config(**settings, **tensorboard)


def test_workers_below_one_are_refused_naming_the_setting():
    with pytest.raises(ConfigError, match=r"kubeflow\.trainer\.workers: Input should be greater"):
        cluster_config(**{"kubeflow.trainer.workers": 0})


def test_a_local_run_with_several_workers_is_refused_naming_the_setting(sample_data):
    config = cluster_config(**{"kubeflow.trainer.workers": 2, "data.root": sample_data})
    with pytest.raises(ConfigError, match=r"kubeflow\.trainer\.workers is 2, but a run here"):
        create_pipeline(config)


def launch(tmp_path, **settings) -> subprocess.Popen:
    """The Trainer task's launcher with a minimal executor input, as the KFP launcher starts it.

    The executor it names does not exist: a replica that starts fails at once.
    """
    executor_input = {
        "inputs": {},
        "outputs": {
            "artifacts": {"model_run": {"artifacts": [{"uri": str(tmp_path / "model_run")}]}},
            "parameters": {"gcp_resources": {"outputFile": str(tmp_path / "gcp_resources")}},
            "outputFile": str(tmp_path / "task" / "output_metadata.json"),
        },
    }
    job = job_settings_of(workers=2, **settings).model_dump_json()
    command = [
        sys.executable,
        "-m",
        "imgclf.kubeflow.multi_worker",
        "--executor_class_path",
        "imgclf.no_such_module.Executor",
        "--json_serialized_invocation_args",
        json.dumps(executor_input),
        multi_worker.JOB_ARG,
        job,
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
    training_operator,
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
    assert "Traceback" not in output, output
    assert len([name for name in training_operator.deleted if name in output]) == 1
    assert not (tmp_path / "task" / "output_metadata.json").exists()


def test_cancelling_the_task_deletes_its_tfjob(training_operator, tmp_path):
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
    assert f"Stopped by SIGTERM: stopping TFJob ml/{created}" in output
    assert created in training_operator.deleted


def test_a_replica_that_fails_fails_the_task_naming_it_and_quoting_its_log(
    training_operator, tmp_path
):
    output = finish(launch(tmp_path))
    assert "The Trainer's job failed: TFJob ml/" in output
    assert "replica(s) failed." in output
    assert re.search(
        r"Replica \S+-(chief|worker)-0 failed with exit code 1\. Its log ends:", output
    )
    assert "    Traceback (most recent call last):" in output
    assert not (tmp_path / "task" / "output_metadata.json").exists()


VERTEX = {
    "backend": "vertex",
    "project": "my-project",
    "region": "europe-west4",
    "machine_type": "n1-standard-8",
}


def test_on_vertex_a_job_that_never_starts_is_cancelled_and_fails_the_task(
    vertex_training, tmp_path
):
    vertex_training.hold_pending = True
    try:
        process = launch(
            tmp_path, api_endpoint=vertex_training.endpoint, start_deadline_seconds=1, **VERTEX
        )
        output = finish(process)
    finally:
        vertex_training.hold_pending = False
    assert process.returncode == 1, output
    assert "was still JOB_STATE_PENDING after 1 s (kubeflow.trainer.start_deadline_seconds)" in (
        output
    )
    [job] = [name for name in vertex_training.jobs if name in output]
    assert job in vertex_training.cancelled
    resources = json.loads((tmp_path / "gcp_resources").read_text())
    assert resources == {
        "resources": [
            {"resourceType": "CustomJob", "resourceUri": f"{vertex_training.endpoint}/v1/{job}"}
        ]
    }


def test_on_vertex_a_replica_that_fails_fails_the_task_with_vertex_s_reason(
    vertex_training, tmp_path
):
    process = launch(tmp_path, api_endpoint=vertex_training.endpoint, **VERTEX)
    output = finish(process)
    assert process.returncode == 1, output
    assert "ended JOB_STATE_FAILED: The replica workerpool" in output, output
    assert "exited with a non-zero status of 1." in output
    [body] = vertex_training.created[-1:]
    assert [pool["replicaCount"] for pool in body["jobSpec"]["workerPoolSpecs"]] == ["1", "1"]


def test_on_vertex_cancelling_the_task_cancels_its_custom_job(vertex_training, tmp_path):
    vertex_training.hold_pending = True
    try:
        process = launch(tmp_path, api_endpoint=vertex_training.endpoint, **VERTEX)
        line = wait_for_line(process, "Created CustomJob ")
        created = line.split("Created CustomJob ")[1].split(":")[0]
        process.send_signal(signal.SIGTERM)
        output = finish(process)
    finally:
        vertex_training.hold_pending = False
    assert process.returncode == 128 + signal.SIGTERM, output
    assert created in vertex_training.cancelled
    assert vertex_training.jobs[created].state == "JOB_STATE_CANCELLED"
