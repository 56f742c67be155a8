"""`imgclf kubeflow run|schedule|schedules|disable` with the real kfp 2 client, against a fake API.

The fake (conftest.py) records each request the kfp client sends, so the
tests check what a cluster would receive: the spec, the parameters, the cron
expression, the concurrency, the experiment; and what the user reads when the
cluster says no.
"""

import socket

import pytest
import yaml

from imgclf.cli.main import main

IMAGE = "registry.example.com/image-classifier:test"
PIPELINE_ROOT = "gs://example-bucket/pipelines"


@pytest.fixture(autouse=True)
def cluster_settings(remote_data, monkeypatch, tmp_path):
    for name, value in {
        "IMGCLF_KUBEFLOW__IMAGE": IMAGE,
        "IMGCLF_KUBEFLOW__PIPELINE_ROOT": PIPELINE_ROOT,
        "IMGCLF_KUBEFLOW__DATA_ROOT": remote_data,
        "IMGCLF_KUBEFLOW__EXPERIMENT": "nightly",
        "IMGCLF_OUTPUT_DIR": str(tmp_path / "outputs"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("IMGCLF_CONFIG", raising=False)
    monkeypatch.delenv("KFP_TOKEN", raising=False)
    # The kfp client reads and may write its context file under $HOME.
    monkeypatch.setenv("HOME", str(tmp_path))


def compiled_spec(tmp_path) -> dict:
    return yaml.safe_load((tmp_path / "outputs" / "kubeflow" / "image-classifier.yaml").read_text())


def test_run_uploads_the_pipeline_and_starts_a_run_with_its_parameters(fake_kfp, tmp_path, capsys):
    code = main(
        [
            *("kubeflow", "run", "--host", fake_kfp.host),
            *("--param", "phase1_epochs=10", "--param", "phase2_learning_rate=5e-5"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    (upload,) = fake_kfp.sent("POST", "/pipelines/upload")
    assert upload.query["name"] == ["image-classifier"]
    assert yaml.safe_load(upload.upload) == compiled_spec(tmp_path)
    (experiment,) = fake_kfp.sent("POST", "/experiments")
    assert experiment.body["display_name"] == "nightly"
    (run,) = fake_kfp.sent("POST", "/runs")
    assert run.body["experiment_id"] == "experiment-1"
    assert run.body["pipeline_version_reference"] == {
        "pipeline_id": "pipeline-1",
        "pipeline_version_id": "pipeline-1-v1",
    }
    assert run.body["runtime_config"] == {
        "pipeline_root": PIPELINE_ROOT,
        "parameters": {"phase1_epochs": 10, "phase2_learning_rate": 5e-5},
    }
    assert "Created run run-1 in experiment 'nightly'" in out
    assert f"{fake_kfp.host}/#/runs/details/run-1" in out


def test_a_second_upload_is_a_new_version_of_the_same_pipeline(fake_kfp):
    assert main(["kubeflow", "run", "--host", fake_kfp.host]) == 0
    assert main(["kubeflow", "run", "--host", fake_kfp.host]) == 0
    assert len(fake_kfp.sent("POST", "/pipelines/upload")) == 1
    (version,) = fake_kfp.sent("POST", "/pipelines/upload_version")
    assert version.query["pipelineid"] == ["pipeline-1"]
    assert version.query["name"][0].startswith("image-classifier-")
    second_run = fake_kfp.sent("POST", "/runs")[1]
    assert second_run.body["pipeline_version_reference"]["pipeline_version_id"] == "pipeline-1-v2"
    # The experiment is found by name the second time, not created again.
    assert len(fake_kfp.sent("POST", "/experiments")) == 1


def test_schedule_creates_a_recurring_run_one_at_a_time_without_catchup(fake_kfp, capsys):
    code = main(
        [
            *("kubeflow", "schedule", "--host", fake_kfp.host, "--cron", "0 30 2 * * MON-FRI"),
            *("--param", "data_root=ram://bucket/other"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (job,) = fake_kfp.sent("POST", "/recurringruns")
    assert job.body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * MON-FRI"}}
    assert job.body["max_concurrency"] == 1
    assert job.body["no_catchup"] is True
    assert job.body["mode"] == "ENABLE"
    assert job.body["experiment_id"] == "experiment-1"
    assert job.body["display_name"] == "image-classifier-schedule"
    assert job.body["runtime_config"] == {
        "pipeline_root": PIPELINE_ROOT,
        "parameters": {"data_root": "ram://bucket/other"},
    }
    assert "Created recurring run recurring-1" in capsys.readouterr().out


def test_schedules_lists_this_pipelines_recurring_runs_and_disable_stops_one(fake_kfp, capsys):
    cron = ["--cron", "0 0 3 * * *"]
    assert main(["kubeflow", "schedule", "--host", fake_kfp.host, *cron]) == 0
    assert main(["kubeflow", "schedule", "--host", fake_kfp.host, *cron, "--catchup"]) == 0
    fake_kfp.recurring_runs["someone-elses"] = {
        "recurring_run_id": "someone-elses",
        "pipeline_version_reference": {"pipeline_id": "other", "pipeline_version_id": "x"},
    }
    assert fake_kfp.sent("POST", "/recurringruns")[1].body["no_catchup"] is False
    capsys.readouterr()
    assert main(["kubeflow", "schedules", "--host", fake_kfp.host]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["recurring-1", "recurring-2"]
    assert main(["kubeflow", "disable", "recurring-2", "--host", fake_kfp.host]) == 0
    assert fake_kfp.recurring_runs["recurring-2"]["mode"] == "DISABLE"
    assert fake_kfp.recurring_runs["recurring-1"]["mode"] == "ENABLE"


@pytest.mark.parametrize("cron", ["@daily", "@every 6h", "0 0 3 ? * *", "*/15 * * * JAN-MAR *"])
def test_the_cron_goes_to_the_server_as_written(cron, fake_kfp, capsys):
    code = main(["kubeflow", "schedule", "--host", fake_kfp.host, "--cron", cron])
    assert code == 0, capsys.readouterr().err
    (job,) = fake_kfp.sent("POST", "/recurringruns")
    assert job.body["trigger"] == {"cron_schedule": {"cron": cron}}


def test_a_cron_the_server_refuses_is_explained_in_its_words(fake_kfp, capsys):
    # The API server's answer to a cron robfig/cron cannot parse
    # (backend/src/apiserver/server/api_converter.go): an invalid-input error, 400.
    words = (
        "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron). "
        "Error: expected exactly 6 fields, found 5: [0 3 * * *]"
    )
    fake_kfp.fail("POST", "/recurringruns", 400, words)
    code = main(["kubeflow", "schedule", "--host", fake_kfp.host, "--cron", "0 3 * * *"])
    err = capsys.readouterr().err
    assert code == 1
    assert "answered 400 Bad Request while creating recurring run" in err
    assert f"The server said: {words}" in err
    assert "Traceback" not in err
    assert fake_kfp.recurring_runs == {}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_named_with_what_to_check(capsys):
    host = f"http://127.0.0.1:{closed_port()}"
    assert main(["kubeflow", "run", "--host", host]) == 1
    err = capsys.readouterr().err
    assert f"Cannot reach Kubeflow Pipelines at {host} while connecting" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "method, path, status, args, expected",
    [
        ("GET", "/pipelines", 401, ["run"], "answered 401 Unauthorized while looking up pipeline"),
        ("POST", "/pipelines/upload", 403, ["run"], "answered 403 Forbidden while uploading"),
        (
            "POST",
            "/recurringruns/unknown:disable",
            404,
            ["disable", "unknown"],
            "answered 404 Not Found while disabling recurring run 'unknown': not found",
        ),
        ("POST", "/experiments", 409, ["run"], "answered 409 Conflict while finding or creating"),
        ("POST", "/runs", 500, ["run"], "answered 500 Internal Server Error while creating run"),
        ("POST", "/runs", 503, ["run"], "the server failed. Retry later"),
    ],
)
def test_refusals_and_failures_are_explained_not_dumped(
    fake_kfp, capsys, method, path, status, args, expected
):
    fake_kfp.fail(method, path, status, "the server's own words")
    action, *rest = args
    assert main(["kubeflow", action, *rest, "--host", fake_kfp.host]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "The server said: the server's own words" in err
    assert "Traceback" not in err


def test_the_token_reaches_the_server_as_a_bearer_token(fake_kfp, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    assert main(["kubeflow", "schedules", "--host", fake_kfp.host]) == 0
    assert fake_kfp.requests
    assert all(r.authorization == "Bearer secret-token" for r in fake_kfp.requests)
