"""What a local run mends before it starts: a killed run's leftovers, a lost metadata store."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from imgclf.modelstore.history import ServingHistoryLost
from imgclf.modelstore.serving_folder import record_push
from imgclf.pipeline.local_run import SET_ASIDE_SUFFIX, set_aside_orphaned_outputs, starting_run
from imgclf.pipeline.lock import holder, lock_path
from imgclf.pipeline.report import outcome_of
from imgclf.pipeline.runs import KILLED, NODE, PIPELINE_RUN, list_runs
from imgclf.settings.config import load_config


def _config(tmp_path, **settings):
    return load_config({"output_dir": str(tmp_path), **settings})


def _write(path, text="x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_outputs_of_a_lost_metadata_store_are_moved_aside_not_overwritten(tmp_path):
    root = str(tmp_path / "root")
    # The serving folder configured inside the pipeline root stays where servers look.
    config = _config(tmp_path, pipeline_root=root, serving_root=f"{root}/serving")
    model = os.path.join(root, "Trainer", "model", "5", "saved_model.pb")
    served = os.path.join(config.serving_model_dir, "1", "saved_model.pb")
    _write(model, "span 2's model")
    _write(served)
    record_push(config.push_records_dir, os.path.dirname(served))
    with starting_run(config) as mended:
        [line] = mended
    [aside] = [p for p in os.listdir(tmp_path) if p.startswith("root" + SET_ASIDE_SUFFIX)]
    assert line == (
        f"no metadata store at {config.metadata_path}: the outputs of the runs it recorded "
        f"were moved to {tmp_path / aside}, so that none is overwritten"
    )
    with open(tmp_path / aside / "Trainer" / "model" / "5" / "saved_model.pb") as f:
        assert f.read() == "span 2's model"
    assert sorted(os.listdir(root)) == ["pushes", "serving"] and os.path.exists(served)


def test_outputs_stay_while_their_metadata_store_exists(tmp_path):
    config = _config(tmp_path)
    _write(os.path.join(config.pipeline_root, "Trainer", "model", "5", "saved_model.pb"))
    _write(config.metadata_path, "")
    assert set_aside_orphaned_outputs(config) is None
    assert os.listdir(config.pipeline_root) == ["Trainer"]


def _store_with_a_killed_trainer(config) -> None:
    """An MLMD store as a run killed in its Trainer leaves it: the Trainer still RUNNING."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    store = metadata_store.MetadataStore(connection)
    [run_type, node_type] = [
        store.put_context_type(metadata_store_pb2.ContextType(name=name))
        for name in (PIPELINE_RUN, NODE)
    ]
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="component"))
    [run, *nodes] = store.put_contexts(
        [
            metadata_store_pb2.Context(type_id=run_type, name="run-1"),
            *(
                metadata_store_pb2.Context(type_id=node_type, name=f"{config.pipeline_name}.{n}")
                for n in ("ImportExampleGen", "Trainer")
            ),
        ]
    )
    states = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.RUNNING)
    executions = store.put_executions(
        [metadata_store_pb2.Execution(type_id=execution_type, last_known_state=s) for s in states]
    )
    store.put_attributions_and_associations(
        [],
        [
            metadata_store_pb2.Association(context_id=context, execution_id=execution)
            for execution, node in zip(executions, nodes)
            for context in (run, node)
        ],
    )


def test_an_execution_a_killed_run_left_running_is_closed_and_reported_killed(tmp_path):
    config = _config(tmp_path)
    os.makedirs(os.path.dirname(config.metadata_path))
    _store_with_a_killed_trainer(config)
    [run] = list_runs(config.metadata_path, config.pipeline_name)
    assert run.nodes["Trainer"].state == "RUNNING"
    # Seen while no run holds the lock, it can only have been killed.
    described = outcome_of(run).describe(min_accuracy=0.5)
    assert "KILLED: Trainer never finished (the run's process died)" in described

    with starting_run(config) as mended:
        assert mended == ["marked as killed in ML Metadata: Trainer"]
    [run] = list_runs(config.metadata_path, config.pipeline_name)
    assert (run.nodes["Trainer"].state, run.nodes["Trainer"].stopped) == ("CANCELED", KILLED)
    assert run.nodes["ImportExampleGen"].state == "COMPLETE"
    assert "KILLED: Trainer never finished" in outcome_of(run).describe(min_accuracy=0.5)
    with starting_run(config) as mended:
        assert mended == []  # once closed, it stays closed


def test_a_run_in_progress_is_reported_as_running(tmp_path):
    config = _config(tmp_path)
    os.makedirs(os.path.dirname(config.metadata_path))
    _store_with_a_killed_trainer(config)
    [run] = list_runs(config.metadata_path, config.pipeline_name)
    outcome = outcome_of(run)
    outcome.in_progress_by = "pid 7 on host, since 2026-11-24T03:00:00+00:00"
    assert f"Still running ({outcome.in_progress_by}): Trainer." in outcome.describe(0.5)


def test_a_run_and_its_children_keep_temporary_files_in_a_folder_removed_after_it(
    tmp_path, monkeypatch
):
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    config = _config(tmp_path)
    with starting_run(config):
        own = tempfile.mkdtemp()
        child = subprocess.run(
            [sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp())"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        run_folder = os.path.dirname(own)
        assert os.path.dirname(run_folder) == str(system_tmp)
        assert os.path.dirname(child.stdout.strip()) == run_folder
    assert os.listdir(system_tmp) == []
    assert (os.environ["TMPDIR"], tempfile.gettempdir()) == (str(system_tmp), str(system_tmp))

    # A killed run leaves its folder behind; the next run removes it, and says so.
    _write(os.path.join(run_folder, "tfx_ephemeral-1.16.0.tar.gz"))
    with starting_run(config) as mended:
        assert mended == [f"removed the temporary files a killed run left in {run_folder}"]
    assert os.listdir(system_tmp) == []


# A run as `imgclf retrain` makes one, in the ServingCheck: its probe loading a model.
RUN_IN_THE_SERVING_CHECK = """
import sys
from absl import logging
from imgclf.components.serving_check import probe
from imgclf.pipeline.local_run import RunStopped, starting_run
from imgclf.settings.config import load_config

logging.set_verbosity(logging.INFO)
try:
    with starting_run(load_config({"output_dir": sys.argv[1]})):
        probe(sys.argv[2], timeout_seconds=600)
except RunStopped as stop:
    print(stop.args[0])
    sys.exit(stop.exit_status)
"""
PROBE_STARTED = re.compile(r"Serving check: probe pid (\d+) loads ")


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_serving_probe_marks_the_run_and_releases_the_lock(
    signum, tmp_path
):
    config = _config(tmp_path)
    # A model the probe's loader blocks on (opening a FIFO nobody writes), as on a slow disk.
    model = tmp_path / "candidate"
    model.mkdir()
    os.mkfifo(model / "saved_model.pb")
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_IN_THE_SERVING_CHECK, str(tmp_path), str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(300, run.kill)
    watchdog.start()
    try:
        started = next(filter(None, map(PROBE_STARTED.search, run.stderr)), None)
        assert started, "the run never started its serving probe"
        probe = int(started[1])
        assert _running(probe)
        assert holder(config).startswith(f"pid {run.pid} on ")
        _store_with_a_killed_trainer(config)  # the run's Trainer, as if RUNNING now
        run.send_signal(signum)
        out, _ = run.communicate(timeout=120)
    finally:
        watchdog.cancel()
        run.kill()
    name = signal.Signals(signum).name
    assert (run.returncode, out) == (128 + signum, f"stopped by {name}\n")
    assert not _running(probe)
    assert holder(config) is None
    assert Path(lock_path(config)).read_text() == ""
    [stopped] = list_runs(config.metadata_path, config.pipeline_name)
    trainer = stopped.nodes["Trainer"]
    assert (trainer.state, trainer.stopped) == ("CANCELED", f"stopped by {name}")
    described = outcome_of(stopped).describe(min_accuracy=0.5)
    assert f"  STOPPED by {name} while Trainer ran." in described
    assert stopped.stopped == f"stopped by {name}"
    assert "KILLED" not in described
    with starting_run(config) as mended:
        assert mended == []  # nothing left to mend


def test_a_serving_folder_that_lost_its_versions_stops_the_run_unless_allowed(tmp_path):
    config = _config(tmp_path)
    for version in (1, 2):  # as the Pusher records its pushes
        record_push(config.push_records_dir, os.path.join(config.serving_model_dir, str(version)))
    os.makedirs(config.serving_model_dir)  # a share mounted empty
    with pytest.raises(ServingHistoryLost) as lost, starting_run(config):
        pytest.fail("the run started")
    assert str(lost.value).startswith(
        f"2 push(es) to {config.serving_model_dir} are recorded in {config.push_records_dir} "
        f"(the last: {config.serving_model_dir}/2), but it holds no version now"
    )
    # Another serving folder has no history of its own to lose.
    elsewhere = _config(tmp_path, serving_root=str(tmp_path / "elsewhere"))
    with starting_run(elsewhere):
        pass
    assert holder(config) is None
    with starting_run(config, pushes=False):  # validation pushes nothing: it may run
        pass
    allowed = _config(tmp_path, **{"evaluation.allow_empty_serving_folder": True})
    with starting_run(allowed):
        pass
    (Path(config.serving_model_dir) / "2").mkdir()
    (Path(config.serving_model_dir) / "2" / "saved_model.pb").touch()
    with starting_run(config):  # a version is served: nothing was lost
        pass
