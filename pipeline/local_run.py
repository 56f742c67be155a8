"""Running the pipeline on this machine: hold the lock, mend leftovers, run it with Beam.

Every local run (the TFX CLI's through local_runner.py, so `imgclf run` and
`imgclf demo`; `imgclf retrain`, `imgclf validate`) runs here (`running_here`),
holding the pipeline's lock (pipeline/lock.py). Holding it, it can tell what an
earlier run left behind from what a running one is doing:

- a lock file that names a holder: that run was killed; said, and taken over;
- executions still RUNNING in ML Metadata: their process died; marked CANCELED;
- a pipeline root without its metadata store (the store was lost or deleted):
  TFX names output folders by execution id, and a new store counts ids from 1
  again, so the new runs would write into the old runs' folders. The old
  outputs are moved aside first, and nothing is overwritten in place.

And one thing it does not mend: a serving folder that lost the versions
recorded as pushed there (deleted, or a share mounted empty). What is served is
what a run builds on and is judged against: the run does not start
(modelstore/history.py, ServingHistoryLost) unless
evaluation.allow_empty_serving_folder says to start anew.

Every temporary file of the run, its child processes' included, goes in one
folder of the system's temp folder, removed when the run ends (or, when it was
killed, by the next run). Given Beam arguments without a dependency flag, TFX
builds a 52 MB `tfx_ephemeral` package in a fresh temp folder for each Beam
component and never removes it (tfx/utils/dependency_utils.py; the default,
no arguments, builds none), and AutoGraph's generated modules outlive a
killed process. Left in /tmp, a daily run would add about 75 GB a year.

While it runs, SIGTERM (how Kubernetes, systemd and most schedulers stop work)
and SIGINT (Ctrl-C) stop it cleanly: `RunStopped` is raised in the main
thread, where the components run, so what they started is stopped on the way
out (`subprocess.run` kills its child); the executions it interrupted are
marked CANCELED in ML Metadata, saying which signal stopped them; the lock
is released. A second signal is not caught again: it stops the process at once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from absl import logging
from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from imgclf.modelstore.history import check_history
from imgclf.pipeline.lock import exclusive, lock_path
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.pipeline.runs import close_killed_executions, mark_stopped_runs
from imgclf.settings.base import is_remote
from imgclf.settings.config import PipelineConfig
from imgclf.trainer.distribution import use_cpu_replicas

SET_ASIDE_SUFFIX = ".before-"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How long a run stopped by a signal has to mark its executions and release its lock.
STOP_DEADLINE_SECONDS = 120


class RunStopped(BaseException):
    """A stop signal reached the run.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` takes
    it for a failure: TFX's launcher would mark the execution FAILED, and the
    report would send the operator to a log that holds no error. Its arguments
    are (message, signal number): Beam re-raises it with its step appended to
    the message (apache_beam/runners/common.py, `_reraise_augmented`).
    """

    def __init__(self, message: str, signum: int):
        super().__init__(message, signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.args[1]).name

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.args[1]


@dataclass(frozen=True)
class LocalRun:
    """The pipeline built for this run, and what was mended before it."""

    pipeline: tfx.dsl.Pipeline
    mended: list[str]

    def start(self) -> None:
        """Runs every component, in this process, with Beam."""
        BeamDagRunner().run(self.pipeline)


@contextmanager
def running_here(
    config: PipelineConfig, wait: bool = False, validate_only: bool = False
) -> Iterator[LocalRun]:
    """The run, built while holding the lock (what is served is read then); `start()` it.

    `wait`: for a run in progress to end, instead of raising PipelineBusyError.
    `validate_only`: the pipeline up to its data gate, which pushes nothing.
    """
    if not validate_only:
        # Before any component runs a TensorFlow op in this process.
        use_cpu_replicas(config.training.cpu_replicas)
    with starting_run(config, wait, pushes=not validate_only) as mended:
        yield LocalRun(create_pipeline(config, validate_only=validate_only), mended)


def check_serving_history(config: PipelineConfig) -> None:
    check_history(
        config.serving_model_dir,
        config.push_records_dir,
        config.evaluation.allow_empty_serving_folder,
    )


@contextmanager
def starting_run(
    config: PipelineConfig, wait: bool = False, pushes: bool = True
) -> Iterator[list[str]]:
    """Holds the lock for one run; yields a line for each leftover it mended.

    A run that `pushes` does not start when the serving folder lost its history.
    """
    with (
        exclusive(config, wait) as killed,
        _stopped_by_signals(),
        _temporary_folder(config) as left_behind,
    ):
        mended = []
        if killed:
            mended.append(f"the previous run ({killed}) was killed; its lock was taken over")
        if left_behind:
            mended.append(f"removed the temporary files a killed run left in {left_behind}")
        closed = close_killed_executions(config.metadata_path, config.pipeline_name)
        if closed:
            mended.append(f"marked as killed in ML Metadata: {', '.join(closed)}")
        moved = set_aside_orphaned_outputs(config)
        if moved:
            mended.append(
                f"no metadata store at {config.metadata_path}: the outputs of the runs it "
                f"recorded were moved to {moved}, so that none is overwritten"
            )
        for line in mended:
            logging.warning("%s: %s", config.pipeline_name, line)
        if pushes:
            check_serving_history(config)
        started_ms = int(time.time() * 1000)
        try:
            yield mended
        except RunStopped as stop:
            reason = f"stopped by {stop.signal_name}"
            mark_stopped_runs(config.metadata_path, started_ms, reason)
            stopped = close_killed_executions(config.metadata_path, config.pipeline_name, reason)
            logging.warning(
                "%s: %s; marked as such in ML Metadata: %s",
                config.pipeline_name,
                reason,
                ", ".join(stopped) or "no component was running",
            )
            raise RunStopped(reason, stop.args[1]) from None


@contextmanager
def _temporary_folder(config: PipelineConfig) -> Iterator[str | None]:
    """The run's own temp folder, for this process and its children; yields the folder if a
    killed run left it. Only the lock's holder uses it, so what is there is a dead run's."""
    lock = os.path.abspath(lock_path(config)).encode()
    path = os.path.join(tempfile.gettempdir(), f"imgclf-run-{hashlib.sha1(lock).hexdigest()[:12]}")
    left_behind = os.path.exists(path)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    before = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = path
    try:
        yield path if left_behind else None
    finally:
        tempfile.tempdir = before[0]
        if before[1] is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = before[1]
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """While it lasts, SIGTERM and SIGINT raise RunStopped in the main thread, once."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def stop(signum: int, frame) -> None:
        for each, handler in before.items():  # a second signal stops the process at once
            signal.signal(each, handler)
        raise RunStopped(f"stopped by {signal.Signals(signum).name}", signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def set_aside_orphaned_outputs(config: PipelineConfig) -> str | None:
    """Moves the pipeline root's contents aside when its metadata store is gone; returns where.

    The serving folder, the metadata store and the push records stay, if inside the root.
    A root on an object store (gs://, s3://) is left: folders cannot be renamed there.
    """
    root = config.pipeline_root
    if os.path.exists(config.metadata_path) or is_remote(root) or not os.path.isdir(root):
        return None
    kept = (config.serving_model_dir, config.metadata_path, config.push_records_dir)
    orphans = [
        name
        for name in sorted(os.listdir(root))
        if not any(_within(path, os.path.join(root, name)) for path in kept)
    ]
    if not orphans:
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
    aside = f"{root.rstrip(os.sep)}{SET_ASIDE_SUFFIX}{stamp}"
    os.makedirs(aside)
    for name in orphans:
        os.rename(os.path.join(root, name), os.path.join(aside, name))
    return aside


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


@contextmanager
def forwarding_stops(child: subprocess.Popen) -> Iterator[list[int]]:
    """For a process that runs the pipeline in `child`, started in a session of its own.

    While it lasts, SIGTERM or SIGINT to this process sends SIGTERM to the child's
    process group, and records the signal in the list it yields. SIGTERM for both:
    the TFX CLI, between this process and the runner, answers SIGINT by SIGKILLing
    the runner (`subprocess.call`), which would leave its lock and executions as a
    crash does. The group has STOP_DEADLINE_SECONDS to stop before SIGKILL.
    """
    received: list[int] = []
    deadline = threading.Timer(STOP_DEADLINE_SECONDS, _kill_group, [child.pid])
    deadline.daemon = True
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def forward(signum: int, frame) -> None:
        if not received:
            _signal_group(child.pid, signal.SIGTERM)
            deadline.start()
        received.append(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    try:
        yield received
    finally:
        deadline.cancel()
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(pid, signum)
