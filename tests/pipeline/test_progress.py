"""`imgclf run`'s progress lines, read from a real ML Metadata store as a run writes it."""

import re
import time

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from imgclf.pipeline.progress import Progress, watching
from imgclf.pipeline.runs import NODE, PIPELINE_RUN
from imgclf.settings.names import KEY_FIGURE_PROPERTY

PIPELINE = "image-classifier"
Execution = metadata_store_pb2.Execution


class RunWriter:
    """Writes executions into a store as TFX's orchestrator does: node and run contexts, the
    execution's state, and on completion its output artifacts with their properties."""

    def __init__(self, path: str):
        connection = metadata_store_pb2.ConnectionConfig()
        connection.sqlite.filename_uri = path
        self.store = metadata_store.MetadataStore(connection)
        self.run_type, self.node_type = (
            self.store.put_context_type(metadata_store_pb2.ContextType(name=name))
            for name in (PIPELINE_RUN, NODE)
        )
        self.execution_type = self.store.put_execution_type(
            metadata_store_pb2.ExecutionType(name="component")
        )
        self.artifact_type = self.store.put_artifact_type(
            metadata_store_pb2.ArtifactType(name="Model")
        )
        [self.run] = self.store.put_contexts(
            [metadata_store_pb2.Context(type_id=self.run_type, name="run-1")]
        )

    def start(self, node: str, pipeline: str = PIPELINE, state=Execution.RUNNING) -> Execution:
        [context] = self.store.put_contexts(
            [metadata_store_pb2.Context(type_id=self.node_type, name=f"{pipeline}.{node}")]
        )
        execution = Execution(type_id=self.execution_type, last_known_state=state)
        execution.id, _, _ = self.store.put_execution(execution, [], [])
        self.store.put_attributions_and_associations(
            [],
            [
                metadata_store_pb2.Association(context_id=context_id, execution_id=execution.id)
                for context_id in (self.run, context)
            ],
        )
        return execution

    def end(self, execution: Execution, state=Execution.COMPLETE, figure: str | None = None):
        [execution] = self.store.get_executions_by_id([execution.id])
        execution.last_known_state = state
        artifact = metadata_store_pb2.Artifact(type_id=self.artifact_type, uri="/model")
        if figure is not None:
            artifact.custom_properties[KEY_FIGURE_PROPERTY].string_value = figure
        event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT)
        event.path.steps.add().key = "model"
        self.store.put_execution(execution, [(artifact, event)], [])


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "metadata.sqlite")


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_nothing_is_shown_before_the_run_creates_its_store(store_path):
    assert Progress(store_path, PIPELINE, _now_ms()).new_lines() == []


def test_each_component_is_shown_once_as_it_starts_and_once_as_it_ends(store_path):
    writer = RunWriter(store_path)
    progress = Progress(store_path, PIPELINE, _now_ms())
    trainer = writer.start("Trainer")
    assert progress.new_lines() == ["  Trainer ..."]
    assert progress.new_lines() == []
    writer.end(trainer, figure="validation accuracy 0.992 after 17 epochs")
    [line] = progress.new_lines()
    assert line.startswith("  Trainer done in ")
    assert line.endswith(" s: validation accuracy 0.992 after 17 epochs")
    assert progress.new_lines() == []


def test_components_that_ended_between_two_reads_are_shown_in_the_order_they_ended(store_path):
    writer = RunWriter(store_path)
    progress = Progress(store_path, PIPELINE, _now_ms())
    schema, examples = writer.start("CuratedSchema"), writer.start("ImportExampleGen")
    writer.end(examples, figure=None)
    writer.end(schema, state=Execution.CACHED)
    failed = writer.start("DataGate")
    writer.end(failed, state=Execution.FAILED)
    lines = progress.new_lines()
    assert [re.sub(r" [\d.]+ s.*", "", line) for line in lines] == [
        "  ImportExampleGen ...",
        "  ImportExampleGen done in",
        "  CuratedSchema ...",
        "  CuratedSchema done in",
        "  DataGate ...",
        "  DataGate failed after",
    ]
    assert lines[3].endswith(" s (cached)")


def test_earlier_runs_and_other_pipelines_are_not_shown(store_path):
    writer = RunWriter(store_path)
    writer.end(writer.start("Trainer"), figure="an earlier run's")
    since = _now_ms() + 1
    progress = Progress(store_path, PIPELINE, since)
    while _now_ms() < since:  # the next execution is created after `since`, to the ms
        pass
    writer.start("Trainer", pipeline=f"{PIPELINE}-validation")
    writer.start("Pusher")
    assert progress.new_lines() == ["  Pusher ..."]


def test_watching_shows_at_its_end_what_its_last_read_had_not_seen(store_path):
    writer = RunWriter(store_path)
    shown = []
    with watching(store_path, PIPELINE, shown.append):
        writer.end(writer.start("Pusher"), figure="pushed version 3")
    assert shown[0] == "  Pusher ..."
    assert shown[1].startswith("  Pusher done in ") and shown[1].endswith(": pushed version 3")
    assert len(shown) == 2
