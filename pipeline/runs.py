"""What a pipeline run did, read back from ML Metadata (MLMD).

TFX records every run as a `pipeline_run` context holding one execution per
component, with its state, timing and the artifacts it read and wrote. This
module turns that into plain objects for reports and tests.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from urllib.request import pathname2url

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

PIPELINE_RUN = "pipeline_run"
PUSHED_MODEL = "PushedModel"  # TFX's artifact type name
NODE = "node"
_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
STATE_NAMES = {value: name for name, value in metadata_store_pb2.Execution.State.items()}
# States of an execution that did not finish its work.
UNFINISHED = ("FAILED", "CANCELED", "RUNNING")
# Why an execution stopped, when no component said so: set on those a killed run left.
STOPPED_PROPERTY = "stopped"
KILLED = "killed: its process died while it ran"


@dataclass
class Artifact:
    type: str
    uri: str
    properties: dict[str, str | int | float]


@dataclass
class NodeRun:
    node_id: str
    state: str  # COMPLETE, CACHED, FAILED, RUNNING, CANCELED, ...
    seconds: float
    stopped: str | None = None  # why a CANCELED execution stopped
    execution_id: int = 0
    updated_ms: int = 0  # when its state last changed, in ms since the epoch
    inputs: dict[str, list[Artifact]] = field(default_factory=dict)
    outputs: dict[str, list[Artifact]] = field(default_factory=dict)

    def output(self, key: str) -> Artifact | None:
        artifacts = self.outputs.get(key, [])
        return artifacts[0] if artifacts else None


@dataclass
class PipelineRun:
    run_id: str
    nodes: dict[str, NodeRun]
    stopped: str | None = None  # "stopped by SIGTERM", when a signal stopped the run

    @property
    def seconds(self) -> float:
        """The components' wall time, summed."""
        return sum(node.seconds for node in self.nodes.values())


class DamagedStoreError(ValueError):
    """The metadata store's file is not a sound SQLite database; the message says what to do."""


def open_store(metadata_path: str, writable: bool = False) -> metadata_store.MetadataStore:
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"No ML Metadata database at {metadata_path!r}: no run yet?")
    check_store(metadata_path)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
        if writable
        else metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    )
    return metadata_store.MetadataStore(config)


def check_store(metadata_path: str) -> None:
    """Raises DamagedStoreError unless SQLite's own check finds the database sound.

    ML Metadata would fail on a damaged file at some query, with SQLite's words and
    a query for the operator to read; this says it once, before anything else reads it.
    """
    uri = f"file:{pathname2url(os.path.abspath(metadata_path))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as database:
            problems = [row[0] for row in database.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as error:
        problems = [str(error)]
    if problems != ["ok"]:
        raise DamagedStoreError(
            f"The ML Metadata store {metadata_path} is damaged ({problems[0]}). Move it aside "
            f"(mv {metadata_path} {metadata_path}.damaged): the next run starts a new store, "
            "sets the old outputs aside, and finds what is served in the serving folder, "
            "which keeps the history."
        )


def list_runs(metadata_path: str, pipeline_name: str) -> list[PipelineRun]:
    """Every run of the pipeline, oldest first."""
    store = open_store(metadata_path)
    node_ids = _node_ids(store, pipeline_name)
    runs = []
    for context in sorted(store.get_contexts_by_type(PIPELINE_RUN), key=lambda c: c.id):
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        nodes = {}
        for execution in executions:
            node_id = _node_of(store, execution, node_ids)
            if node_id is not None:
                nodes[node_id] = _node_run(store, node_id, execution)
        if nodes:
            stopped = context.custom_properties.get(STOPPED_PROPERTY)
            runs.append(PipelineRun(context.name, nodes, stopped and stopped.string_value))
    return runs


def close_killed_executions(
    metadata_path: str, pipeline_name: str, reason: str = KILLED
) -> list[str]:
    """Marks the pipeline's executions left RUNNING as CANCELED, saying why they stopped.

    Only for a caller holding the pipeline's lock (pipeline/lock.py): then no
    execution of it can be running, and one still RUNNING lost its process
    (or, with another `reason`, was stopped by it). Returns their node ids.
    """
    if not os.path.exists(metadata_path):
        return []
    store = open_store(metadata_path, writable=True)
    nodes = _node_ids(store, pipeline_name)
    closed, killed = [], []
    for execution in store.get_executions():
        if execution.last_known_state != metadata_store_pb2.Execution.RUNNING:
            continue
        node = _node_of(store, execution, nodes)
        if node is None:
            continue
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties[STOPPED_PROPERTY].string_value = reason
        closed.append(execution)
        killed.append(node)
    if closed:
        store.put_executions(closed)
    return killed


def mark_stopped_runs(metadata_path: str, since_ms: int, reason: str) -> None:
    """Records `reason` on the pipeline runs begun since `since_ms` (ms since the epoch):
    a run stopped between two components has no execution to say so."""
    if not os.path.exists(metadata_path):
        return
    store = open_store(metadata_path, writable=True)
    begun = [
        context
        for context in store.get_contexts_by_type(PIPELINE_RUN)
        if context.create_time_since_epoch >= since_ms
    ]
    for context in begun:
        context.custom_properties[STOPPED_PROPERTY].string_value = reason
    if begun:
        store.put_contexts(begun)


def latest_run(metadata_path: str, pipeline_name: str) -> PipelineRun | None:
    runs = list_runs(metadata_path, pipeline_name)
    return runs[-1] if runs else None


def executions_since(
    store: metadata_store.MetadataStore, pipeline_name: str, since_ms: int, changed_ms: int = 0
) -> list[NodeRun]:
    """The pipeline's executions begun since `since_ms` and changed since `changed_ms` (ms
    since the epoch), in the order their state last changed: what a run in progress has done."""
    node_ids = _node_ids(store, pipeline_name)
    begun = store.get_executions(
        list_options=metadata_store.ListOptions(
            filter_query=f"create_time_since_epoch >= {since_ms} "
            f"AND last_update_time_since_epoch >= {changed_ms}"
        )
    )
    nodes = []
    for execution in begun:
        node_id = _node_of(store, execution, node_ids)
        if node_id is not None:
            nodes.append(_node_run(store, node_id, execution))
    return sorted(nodes, key=lambda node: (node.updated_ms, node.execution_id))


def _node_ids(store, pipeline_name: str) -> dict[int, str]:
    """The pipeline's node contexts: context id -> node id."""
    prefix = f"{pipeline_name}."
    return {
        context.id: context.name.removeprefix(prefix)
        for context in store.get_contexts_by_type(NODE)
        if context.name.startswith(prefix)
    }


def _node_of(store, execution, node_ids: dict[int, str]) -> str | None:
    """The execution's node id, if it is one of `node_ids`' (another pipeline's, if not)."""
    contexts = store.get_contexts_by_execution(execution.id)
    return next((node_ids[c.id] for c in contexts if c.id in node_ids), None)


def _node_run(store, node_id: str, execution) -> NodeRun:
    node = NodeRun(
        node_id=node_id,
        state=STATE_NAMES.get(execution.last_known_state, "UNKNOWN"),
        seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000,
        execution_id=execution.id,
        updated_ms=execution.last_update_time_since_epoch,
    )
    if STOPPED_PROPERTY in execution.custom_properties:
        node.stopped = execution.custom_properties[STOPPED_PROPERTY].string_value
    events = store.get_events_by_execution_ids([execution.id])
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for event in events:
        artifact = artifacts[event.artifact_id]
        key = event.path.steps[0].key if event.path.steps else ""
        target = node.outputs if event.type in _OUTPUT_EVENTS else node.inputs
        target.setdefault(key, []).append(
            Artifact(type_names[artifact.type_id], artifact.uri, _properties(artifact))
        )
    return node


def _properties(artifact) -> dict[str, str | int | float]:
    values = {}
    for properties in (artifact.properties, artifact.custom_properties):
        for name, value in properties.items():
            values[name] = getattr(value, value.WhichOneof("value"))
    return values
