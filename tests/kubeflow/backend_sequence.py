"""The compiled pipeline run as a KFP 2 backend runs it (tests/kubeflow/backend.py).

The tests of one backend mode: test_backend_e2e_open_source.py and
test_backend_e2e_vertex.py collect them, each with its `mode` fixture (two
files, so that two test workers run the two modes side by side).

One sequence of scheduled runs per backend, as a recurring run would make
them, over data arriving in spans. Every Trainer task trains on two workers, a
chief and a worker, each a real process: a TFJob on the stand-in Training
Operator (training_operator.py) in open-source mode, a CustomJob on the
stand-in Vertex AI Training (vertex_training.py) in Vertex mode.
1. span 1: every task runs in its container; the two workers train together,
   the chief's model is pushed as version 1;
2. the same data again: ingestion, validation and training are reused from
   KFP's cache; the Evaluator runs again, its baseline now version 1 (the
   model itself), and nothing is pushed;
3. and again: only the two tasks that look at the data and the serving
   folder run (SpanResolver, ServingHistory); every other task is reused;
4. killed: span 1 with another schedule (so the Trainer is not reused), its
   worker killed during its first epoch: the Trainer task fails naming it,
   and nothing after it runs;
5. span 2 arrives: re-ingested (its fingerprint is new), warm-started from
   version 1 on two workers again, compared with it, pushed as version 2;
6. span 3, train labels rotated: trained, worse than version 2, not pushed;
7. span 4, bad records: the DataGate fails it and nothing is trained;
8. a backfill of span 1 (the `span` run-time parameter): span 1's ingestion
   and training are reused; only the evaluation against today's baseline runs.

Runs 6 and 7 are the pipeline's verdicts, the same whatever the backend: they
run in open-source mode only, and their tests live in
test_backend_e2e_open_source.py, as do those of the KServeRollout task, which
open-source mode adds: it rolls each pushed version out to the stand-in
KServe (tests/kserve_service.py), reached from the task's process through
$KUBECONFIG as a pod reaches its cluster's API (the same API server as the
Training Operator's). What each training service shows of its job is tested in
the mode's own file. Every other run depends on how the backend passes values
(typed or untyped inputs, run-time parameters, cache keys), and runs in both
modes.
"""

import contextlib
import json
import os
from pathlib import Path

import pytest

from backend import OPEN_SOURCE, REPO, VERTEX, Backend, RunRefused, console_view
from bad_records import defects, write_records
from imgclf.imagedata.sample import DEFAULT_CLASSES, write_sample_span
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.kubeflow.cluster import for_kubeflow
from imgclf.kubeflow.runner import compile_pipeline
from imgclf.modelstore.serving_folder import recorded_pushes, versions
from imgclf.pipeline.retrain import scheduled
from imgclf.settings.config import load_config
from imgclf.settings.data import DataConfig
from imgclf.trainer.export import read_summary
from kserve_service import FakeKServe
from kubernetes_api import Cluster, serving
from quick_training import SPAN_PATTERNS, quick_training, write_mislabelled_span
from training_operator import FakeOperator
from vertex_training import PROJECT, REGION

pytestmark = pytest.mark.e2e

RUNS = ("first", "again", "unchanged", "killed", "new_span", "worse", "rejected", "backfill")
VERDICT_RUNS = ("worse", "rejected")


def runs_of(mode: str) -> tuple[str, ...]:
    return tuple(run for run in RUNS if mode == OPEN_SOURCE or run not in VERDICT_RUNS)


ALWAYS_RUN = {"SpanResolver", "ServingHistory"}
ALL_TASKS = {
    "SpanResolver",
    "ImportExampleGen",
    "ImportSchemaGen",
    "ImageValidator",
    "StatisticsGen",
    "SchemaGen",
    "ExampleValidator",
    "ServingHistory",
    "DataReport",
    "DataGate",
    "Trainer",
    "Evaluator",
    "ModelReport",
    "ServingCheck",
    "Pusher",
}
KSERVE_NAME = "shapes"
KILLED_SCHEDULE = {"phase2_epochs": 2}
AFTER_TRAINER = ("Evaluator", "ModelReport", "ServingCheck", "Pusher")
TENSORBOARD = f"projects/{PROJECT}/locations/{REGION}/tensorboards/42"
# The replica each training service's stand-in kills in the killed run: its name's end.
WORKER = {OPEN_SOURCE: "-worker-0", VERTEX: "workerpool1-0"}


def all_tasks(mode: str) -> set[str]:
    return ALL_TASKS | {"KServeRollout"} if mode == OPEN_SOURCE else ALL_TASKS


def compiled(
    mode: str, root: Path, backbone_weights: str, kserve: bool = False, **overrides
) -> tuple[dict, object]:
    """The pipeline compiled for `mode`, its cluster paths local folders standing in for buckets;
    with `kserve` (open-source mode), its KServeRollout task applies to the stand-in KServe."""
    settings = {
        "output_dir": str(root / "compile"),
        "data.root": str(root / "data"),
        **SPAN_PATTERNS,
        "kubeflow.backend": mode,
        "kubeflow.image": "registry.example.com/image-classifier:test",
        "kubeflow.pipeline_root": "gs://placeholder/root",
        "kubeflow.beam.direct_num_workers": 1,
        **quick_training(backbone_weights),
        **overrides,
    }
    config = scheduled(load_config(settings))
    # Local folders where a cluster has buckets: the settings refuse them, so they are set here.
    cluster = config.kubeflow.model_copy(
        update={
            "pipeline_root": str(root / "pipeline_root"),
            "data_root": str(root / "data"),
            "serving_root": str(root / "serving"),
        }
    )
    config = config.model_copy(update={"kubeflow": cluster})
    if kserve:
        # The stand-in KServe reads the serving folder from this machine's disk.
        serving_uri = f"file://{for_kubeflow(config).serving_model_dir}"
        settings = {"name": KSERVE_NAME, "apply": True, "storage_uri": serving_uri}
        cluster = cluster.model_copy(update={"kserve": cluster.kserve.model_copy(update=settings)})
        config = config.model_copy(update={"kubeflow": cluster})
    spec = compile_pipeline(config, str(root / "pipeline.yaml"))
    return spec, for_kubeflow(config)


def with_bad_records(root: str, span: int) -> None:
    write_sample_span(root, span, train_per_class=8, eval_per_class=16, num_shards=1)
    write_records(Path(root) / f"span-{span}" / "train" / "bad.gz", defects().values())


def two_workers(mode: str, vertex_training) -> dict:
    """The settings that make the Trainer a job of two workers on the mode's service."""
    settings = {"kubeflow.trainer.workers": 2, "kubeflow.trainer.start_deadline_seconds": 300}
    if mode == VERTEX:
        settings.update(
            {
                "kubeflow.project": PROJECT,
                "kubeflow.region": REGION,
                "kubeflow.api_endpoint": vertex_training.endpoint,
                "kubeflow.trainer.tensorboard": TENSORBOARD,
            }
        )
    return settings


@pytest.fixture(scope="module")
def sequence(mode, backbone_weights, tmp_path_factory, request):
    root = tmp_path_factory.mktemp(f"backend-{mode}")
    data = str(root / "data")
    write_sample_span(data, 1, train_per_class=8, eval_per_class=16, num_shards=2)
    data_config = DataConfig(root=data, **{k.split(".")[1]: v for k, v in SPAN_PATTERNS.items()})
    write_schema(make_schema(data_config), data_config.schema_path)
    vertex = request.getfixturevalue("vertex_training") if mode == VERTEX else None
    spec, config = compiled(
        mode, root, backbone_weights, kserve=mode == OPEN_SOURCE, **two_workers(mode, vertex)
    )
    backend = Backend(mode, work_dir=REPO)
    pipeline_root = config.pipeline_root
    runs = {"spec": spec, "config": config, "backend": backend, "mode": mode}
    # Stopped when the module's tests are done, or a run fails: its revisions and replicas
    # are processes.
    with contextlib.ExitStack() as cluster:
        kserve = None
        if mode == OPEN_SOURCE:
            for folder in ("kserve", "training-operator"):
                (root / folder).mkdir()
            kserve = FakeKServe(root / "kserve")
            trainers = FakeOperator(root / "training-operator")
            routes = [("/apis/serving.kserve.io/", kserve), ("/", trainers)]
            cluster.enter_context(serving(Cluster(routes), root, "ml"))
        else:
            trainers = vertex
        runs["trainers"] = trainers

        def run(name: str, **parameters):
            if name not in runs_of(mode):
                return
            runs[name] = backend.run(spec, pipeline_root, parameters)
            runs[f"{name}_versions"] = versions(config.serving_model_dir)
            runs[f"{name}_jobs"] = list(trainers.jobs.values())
            if kserve:
                runs[f"{name}_kserve"] = json.loads(
                    json.dumps(kserve.services[("ml", KSERVE_NAME)])
                )

        run("first")
        run("again")
        run("unchanged")
        trainers.kill_when = {WORKER[mode]: "epoch 0 done"}
        run("killed", **KILLED_SCHEDULE)
        trainers.kill_when = {}
        write_sample_span(data, 2, train_per_class=32, eval_per_class=16, num_shards=2)
        run("new_span")
        write_mislabelled_span(data, 3)
        run("worse")
        with_bad_records(data, 4)
        run("rejected")
        run("backfill", span=1)
        for name, ran in zip(runs_of(mode), backend.runs, strict=True):
            seconds = {task: round(t.seconds, 1) for task, t in ran.tasks.items() if t.seconds}
            print(f"{mode} {name}: {seconds}")  # the stand-in's per-task timings (-s)
        yield runs


def trainer_log(sequence, run: str) -> str:
    return Path(sequence[run].tasks["Trainer"].log).read_text()


def trained(sequence, run: str) -> dict:
    """The training summary of the model `run`'s Trainer task exported."""
    model = sequence["backend"].artifact(sequence[run], "Trainer", "model")
    return read_summary(os.path.join(model.uri, "Format-Serving"))


def found(sequence, run: str, key: str) -> int:
    """A version ServingHistory found (-1: none)."""
    return sequence[run].tasks["ServingHistory"].parameters[key]


def test_the_first_run_runs_every_task_in_its_container_and_pushes(sequence):
    first = sequence["first"]
    assert first.succeeded, {name: task.log for name, task in first.tasks.items()}
    assert first.executed() == all_tasks(sequence["mode"])
    assert sequence["first_versions"] == [1]
    examples = sequence["backend"].artifact(first, "ImportExampleGen", "examples")
    assert examples.metadata["span"] == 1.0
    assert found(sequence, "first", "baseline_version") == -1
    provenance = Path(sequence["config"].serving_model_dir, "1", "assets.extra", "provenance.json")
    recorded = json.loads(provenance.read_text())
    assert recorded["span"] == 1
    assert recorded["class_names"] == list(DEFAULT_CLASSES)


def test_the_console_shows_both_reports_the_confusion_matrix_and_the_figures(sequence):
    backend, first = sequence["backend"], sequence["first"]
    model_page = console_view(backend.artifact(first, "ModelReport", "page"))["html"]
    assert model_page.startswith("<!DOCTYPE html>")
    assert "Pushed as version 1" in model_page
    data_page = console_view(backend.artifact(first, "DataReport", "page"))["html"]
    assert "Passed: training may use this data." in data_page
    matrix = console_view(backend.artifact(first, "ModelReport", "confusion_matrix"))
    assert matrix["labels"] == list(DEFAULT_CLASSES)
    assert sum(map(sum, matrix["rows"])) == 16 * len(DEFAULT_CLASSES)  # the eval split
    figures = console_view(backend.artifact(first, "ModelReport", "metrics"))
    assert figures["pushed_version"] == 1.0 and figures["blessed"] == 1.0
    correct = sum(matrix["rows"][i][i] for i in range(len(matrix["labels"])))
    assert figures["accuracy"] == pytest.approx(correct / sum(map(sum, matrix["rows"])))


def test_every_push_is_recorded_in_the_pipeline_root_too(sequence):
    # What ServingHistory reads to notice a serving folder that lost its versions.
    config, served = sequence["config"], sequence[f"{RUNS[-1]}_versions"]
    assert len(served) > 1
    assert recorded_pushes(config.push_records_dir, config.serving_model_dir) == [
        os.path.join(config.serving_model_dir, str(version)) for version in served
    ]


def test_the_first_run_s_two_workers_train_together_and_the_chief_s_model_is_evaluated(sequence):
    first = sequence["first"]
    summary = trained(sequence, "first")
    assert summary["strategy"] == "MultiWorkerMirroredStrategy"
    assert (summary["workers"], summary["replicas_per_worker"]) == (2, 1)
    assert summary["num_replicas"] == 2
    assert summary["global_batch_size"] == 2 * 16
    assert summary["cluster"] == {"chief": 1, "worker": 1}
    # The Model's properties came from the chief's executor output, through the task.
    model = sequence["backend"].artifact(first, "Trainer", "model")
    assert json.loads(model.metadata["class_names"]) == summary["class_names"]
    evaluated = first.tasks["Evaluator"].inputs["artifacts"]["model"]["artifacts"][0]
    assert evaluated["uri"] == model.uri
    assert len(sequence["first_jobs"]) == 1
    assert "succeeded: 2 workers trained." in trainer_log(sequence, "first")


def test_a_killed_worker_fails_the_trainer_task_and_nothing_after_it_runs(sequence):
    killed = sequence["killed"]
    assert killed.tasks["Trainer"].state == "failed"
    for task in AFTER_TRAINER:
        assert killed.tasks[task].state == "not run", task
    assert sequence["killed_versions"] == [1]
    assert len(sequence["killed_jobs"]) == 2


def test_open_source_inputs_arrive_untyped_and_vertex_inputs_typed(sequence):
    trainer_inputs = sequence["first"].tasks["Trainer"].inputs["artifacts"]
    examples = trainer_inputs["examples"]["artifacts"][0]
    assert examples["name"].isdigit()
    if sequence["mode"] == OPEN_SOURCE:
        assert "type" not in examples
    else:
        assert "tfx.Examples" in examples["type"]["instanceSchema"]


def test_the_same_data_again_is_only_evaluated_against_the_model_now_served(sequence):
    again, first = sequence["again"].tasks, sequence["first"].tasks
    assert sequence["again"].succeeded
    for task in ("ImportExampleGen", "ImageValidator", "StatisticsGen", "DataGate", "Trainer"):
        assert again[task].state == "cached", task
        assert again[task].outputs == first[task].outputs, task
    assert found(sequence, "again", "baseline_version") == 1
    assert again["Evaluator"].state == "executed"
    pushed = sequence["backend"].artifact(sequence["again"], "Pusher", "pushed_model")
    assert (pushed.metadata["pushed"], pushed.metadata["pushed_version"]) == (0.0, 1.0)
    assert sequence["again_versions"] == [1]


def test_unchanged_data_and_serving_reuse_every_task_but_those_that_look(sequence):
    unchanged = sequence["unchanged"]
    assert unchanged.succeeded
    assert unchanged.executed() == ALWAYS_RUN
    assert unchanged.cached() == all_tasks(sequence["mode"]) - ALWAYS_RUN
    assert unchanged.tasks["Trainer"].outputs == sequence["first"].tasks["Trainer"].outputs
    assert sequence["unchanged_versions"] == [1]


def test_new_data_is_ingested_and_trained_from_the_served_model(sequence):
    new_span = sequence["new_span"]
    assert new_span.succeeded
    assert {"ImportExampleGen", "Trainer", "Evaluator", "Pusher"} <= new_span.executed()
    fingerprints = [
        sequence[run].tasks["ImportExampleGen"].fingerprint for run in ("first", "new_span")
    ]
    assert fingerprints[0] != fingerprints[1]
    assert found(sequence, "new_span", "warm_start_version") == 1
    assert found(sequence, "new_span", "baseline_version") == 1
    summary = trained(sequence, "new_span")
    start = summary["start"]
    assert start["warm"], start
    # After the killed run's job, two workers again, to the end.
    assert summary["workers"] == 2
    assert len(summary["phases"][1]["epochs"]) == sequence["config"].training.phase2_epochs
    assert start["source"] == os.path.join(sequence["config"].serving_model_dir, "1")
    assert sequence["new_span_versions"] == [1, 2]


def test_a_backfill_is_a_run_time_parameter_and_reuses_that_spans_work(sequence):
    backfill, first = sequence["backfill"].tasks, sequence["first"].tasks
    for task in ("ImportExampleGen", "ImageValidator", "StatisticsGen", "DataGate", "Trainer"):
        assert backfill[task].state == "cached", task
        assert backfill[task].outputs == first[task].outputs, task
    # Today's baseline is version 2, not what span 1's first run had: evaluated again.
    assert found(sequence, "backfill", "baseline_version") == 2
    assert backfill["Evaluator"].state == "executed"


def test_resolver_executors_are_refused_before_any_task(sequence, tmp_path):
    spec = json.loads(json.dumps(sequence["spec"]))
    spec["deploymentSpec"]["executors"]["resolver_executor"] = {
        "resolver": {"outputArtifactQueries": {}}
    }
    backend = Backend(sequence["mode"], work_dir=REPO)
    with pytest.raises(RunRefused, match="non-container and non-importer executor"):
        backend.run(spec, str(tmp_path))
    assert backend.runs == []


def test_the_compiled_spec_has_only_container_executors(sequence):
    executors = sequence["spec"]["deploymentSpec"]["executors"].values()
    assert {kind for executor in executors for kind in executor} == {"container"}
