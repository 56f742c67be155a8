"""What `imgclf run` shows while the pipeline runs, read from ML Metadata.

The TFX CLI runs the pipeline in a process of its own. ML Metadata is where that
process records each component as it starts (an execution, RUNNING) and ends
(COMPLETE, CACHED, FAILED, CANCELED) with its output artifacts, on one of which
each of the project's components records its key figure (components/key_figure.py).
This module reads them back while the run goes, from the process that started it.

Reading while the run writes is safe: ML Metadata's SQLite source answers a
locked database by waiting and retrying (ml_metadata/metadata_store/
sqlite_metadata_source.cc, `WaitThenRetry`, up to ten waits of 0.1-0.3 s),
and a read here takes milliseconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ml_metadata import errors, metadata_store

from imgclf.pipeline.runs import DamagedStoreError, NodeRun, executions_since, open_store
from imgclf.settings.names import KEY_FIGURE_PROPERTY

# How often the store is read while the run goes.
POLL_SECONDS = 1.0
# A poll in flight when the run ends finishes within this.
JOIN_DEADLINE_SECONDS = 30
# The states an execution ends in, and how its line says so.
ENDED = {
    "COMPLETE": "done in",
    "CACHED": "done in",
    "FAILED": "failed after",
    "CANCELED": "stopped after",
}


class Progress:
    """The screen's lines of one run: each component's start, then its end with its time and
    key figure, each shown once, in the order the store records them."""

    def __init__(self, metadata_path: str, pipeline_name: str, since_ms: int):
        self._metadata_path = metadata_path
        self._pipeline_name = pipeline_name
        self._since_ms = since_ms
        self._store: metadata_store.MetadataStore | None = None
        self._started: set[int] = set()
        self._ended: set[int] = set()
        # The last change read: each read asks only for executions changed since (and at it).
        self._changed_ms = 0

    def new_lines(self) -> list[str]:
        """What happened since the last call; nothing while the store cannot be read yet
        (the run creates it) or is locked past ML Metadata's retries (the next call catches up)."""
        try:
            store = self._store or self._open()
            nodes = (
                executions_since(store, self._pipeline_name, self._since_ms, self._changed_ms)
                if store
                else []
            )
        except (errors.StatusError, DamagedStoreError):  # the run itself says it is damaged
            return []
        lines = []
        for node in nodes:
            self._changed_ms = max(self._changed_ms, node.updated_ms)
            if node.execution_id not in self._started:
                self._started.add(node.execution_id)
                lines.append(f"  {node.node_id} ...")
            if node.state in ENDED and node.execution_id not in self._ended:
                self._ended.add(node.execution_id)
                lines.append(ended_line(node))
        return lines

    def _open(self) -> metadata_store.MetadataStore | None:
        if os.path.exists(self._metadata_path):
            self._store = open_store(self._metadata_path)
        return self._store


def ended_line(node: NodeRun) -> str:
    """`  Trainer done in 212.4 s: validation accuracy 0.992 after 17 epochs`."""
    cached = " (cached)" if node.state == "CACHED" else ""
    line = f"  {node.node_id} {ENDED[node.state]} {node.seconds:.1f} s{cached}"
    figure = key_figure(node)
    return f"{line}: {figure}" if figure else line


def key_figure(node: NodeRun) -> str | None:
    for artifacts in node.outputs.values():
        for artifact in artifacts:
            if KEY_FIGURE_PROPERTY in artifact.properties:
                return str(artifact.properties[KEY_FIGURE_PROPERTY])
    return None


@contextmanager
def watching(metadata_path: str, pipeline_name: str, show: Callable[[str], None]) -> Iterator[None]:
    """While it lasts, shows the lines of the run begun in it, as they happen; and, when it
    ends, what the last poll had not seen."""
    progress = Progress(metadata_path, pipeline_name, int(time.time() * 1000))
    ended = threading.Event()

    def poll() -> None:
        while not ended.wait(POLL_SECONDS):
            for line in progress.new_lines():
                show(line)

    poller = threading.Thread(target=poll, name="progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        ended.set()
        poller.join(JOIN_DEADLINE_SECONDS)
        for line in progress.new_lines():
            show(line)
