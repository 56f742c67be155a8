"""What a run on this machine does before its first component: hold the lock, mend leftovers.

Every local run (the TFX CLI's, `imgclf retrain`, `imgclf validate`) starts
here, holding the pipeline's lock (pipeline/lock.py). Holding it, it can tell
what an earlier run left behind from what a running one is doing:

- a lock file that names a holder: that run was killed; said, and taken over;
- executions still RUNNING in ML Metadata: their process died; marked CANCELED;
- a pipeline root without its metadata store (the store was lost or deleted):
  TFX names output folders by execution id, and a new store counts ids from 1
  again, so the new runs would write into the old runs' folders. The old
  outputs are moved aside first, and nothing is overwritten in place.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager

from absl import logging

from imgclf.pipeline.lock import exclusive
from imgclf.pipeline.runs import close_killed_executions
from imgclf.settings.config import PipelineConfig, is_remote

SET_ASIDE_SUFFIX = ".before-"


@contextmanager
def starting_run(config: PipelineConfig, wait: bool = False) -> Iterator[list[str]]:
    """Holds the lock for one run; yields a line for each leftover it mended."""
    with exclusive(config, wait) as killed:
        mended = []
        if killed:
            mended.append(f"the previous run ({killed}) was killed; its lock was taken over")
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
        yield mended


def set_aside_orphaned_outputs(config: PipelineConfig) -> str | None:
    """Moves the pipeline root's contents aside when its metadata store is gone; returns where.

    The serving folder and the metadata store stay, if configured inside the root.
    A root on an object store (gs://, s3://) is left: folders cannot be renamed there.
    """
    root = config.pipeline_root
    if os.path.exists(config.metadata_path) or is_remote(root) or not os.path.isdir(root):
        return None
    kept = (config.serving_model_dir, config.metadata_path)
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
