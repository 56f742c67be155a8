"""One run of a pipeline at a time: the lock beside its metadata store.

A run writes the pipeline's ML Metadata store, its root and its serving
folder, so two runs of one pipeline must never overlap. The lock is an flock
on `<metadata path>.lock`, which the kernel releases when its holder dies,
however it dies: a lock is never stale. The file names its holder while it
runs and is emptied when it ends, so a name found there by the next holder is
that of a run that was killed; the next holder says so.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from imgclf.settings.config import PipelineConfig

# The exit status of a command that found another run holding the lock, and did nothing.
EXIT_BUSY = 75  # EX_TEMPFAIL: cron's next run will try again


class PipelineBusyError(RuntimeError):
    """Another run of the same pipeline holds the lock."""


def lock_path(config: PipelineConfig) -> str:
    return config.metadata_path + ".lock"


@contextmanager
def exclusive(config: PipelineConfig, wait: bool) -> Iterator[str | None]:
    """Holds the pipeline's lock for one run; yields the holder before it if that one was killed."""
    path = lock_path(config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise PipelineBusyError(
                f"Another run of {config.pipeline_name} is in progress ({_read(lock)} holds "
                f"{path}); this one did nothing."
            ) from None
        killed = _read(lock) or None
        lock.seek(0)
        lock.truncate()
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}, since {started}")
        lock.flush()
        try:
            yield killed
        finally:
            lock.truncate(0)


def holder(config: PipelineConfig) -> str | None:
    """Who holds the pipeline's lock now; None when no run is in progress."""
    path = lock_path(config)
    if not os.path.exists(path):
        return None
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(lock) or "another process"
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None


def _read(lock) -> str:
    lock.seek(0)
    return lock.read().strip()
