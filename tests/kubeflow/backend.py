"""A local stand-in for a KFP 2 backend's contract with containers: driver, launcher and cache.

It runs a compiled PipelineSpec the way the backend runs it, each task's
container command as a subprocess from the repository (the image's working
directory), and keeps what ML Metadata would keep in memory. It follows
kubeflow/pipelines' backend/src/v2, checked against these files:

- compiler/visitor.go (and compiler/argocompiler/argo.go, dag.go): only
  container and importer executors; any other ("non-container and
  non-importer executor not implemented") fails the run before a task starts.
  Open-source mode refuses them; Vertex AI answers resolver queries, which
  this stand-in does not model, so it refuses them in both modes.
- driver/resolve.go (resolveInputs, resolveInputParameter,
  resolveUpstreamArtifacts): parameters from the root's inputs
  (componentInputParameter), upstream tasks' output parameters
  (taskOutputParameter) and constants (runtimeValue); artifacts from upstream
  tasks; a number for a STRING parameter is passed as text.
- metadata/converter.go (toRuntimeArtifact): an input artifact as open-source
  KFP hands it over: named by its metadata id, with no type, its metadata the
  artifact's custom properties, integers as numbers. In Vertex mode the input
  carries the type its component declares (Vertex AI's service is not public
  source; TFX's container parser, written for it, needs a type).
- driver/driver.go (provisionOutputs): output artifacts named by output key,
  typed as declared, at <pipeline root>/<run>/<task>/<key>; output parameters
  as files; the executor output file in the task's folder.
- component/launcher_v2.go (compileCmdAndArgs, execute,
  getExecutorOutputFile, mergeRuntimeArtifacts, collectOutputParameters):
  `{{$}}` becomes the executor input JSON; the container's command and
  arguments run; what the executor output file says of an output artifact
  (uri, metadata) is merged into it; output parameters come from that file or
  from the parameters' files.
- cacheutils/cache.go (GenerateCacheKey, GenerateFingerPrint) and
  driver/cache.go (getFingerPrint): a task whose caching is on is reused when
  the sha256 of its cache key (input artifact names, input parameter values,
  output artifact specs, output parameter types, image, command and
  arguments) matches an earlier execution's; its outputs are then the earlier
  ones, with the same ids.
- driver/root_dag.go: the root's parameters are the run's, else the defaults.

Independent tasks run two at a time, as the backend runs ready tasks in parallel.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

OPEN_SOURCE, VERTEX = "kfp", "vertex"
REPO = Path(__file__).resolve().parents[2]
TASK_DEADLINE_SECONDS = 900
VALUE_TYPES = {f"tfx.{name}" for name in ("String", "Integer", "Float", "Boolean", "Bytes")}
# The UI reads these artifacts' URIs as files (frontend/src/components/viewers/
# MetricsVisualizations.tsx, getHtmlViewerConfig: Apis.readFile of the artifact's URI).
PAGE_TYPES = {"system.HTML", "system.Markdown"}


class RunRefused(RuntimeError):
    """The backend refused the run before any task started."""


@dataclass
class Artifact:
    id: int
    uri: str
    schema: dict  # the declared artifactType
    metadata: dict


@dataclass
class Task:
    name: str
    state: str  # "executed", "cached", "failed" or "not run"
    seconds: float = 0.0
    fingerprint: str = ""
    inputs: dict = field(default_factory=dict)  # the executor input's "inputs"
    outputs: dict[str, int] = field(default_factory=dict)  # output key -> artifact id
    parameters: dict = field(default_factory=dict)  # output parameter values
    log: str = ""


@dataclass
class Run:
    id: str
    tasks: dict[str, Task]

    @property
    def succeeded(self) -> bool:
        return all(task.state in ("executed", "cached") for task in self.tasks.values())

    def executed(self) -> set[str]:
        return {name for name, task in self.tasks.items() if task.state == "executed"}

    def cached(self) -> set[str]:
        return {name for name, task in self.tasks.items() if task.state == "cached"}


class Backend:
    """One KFP deployment: its metadata (artifacts), its cache, and runs of compiled specs."""

    def __init__(self, mode: str, work_dir: Path, workers: int = 2):
        if mode not in (OPEN_SOURCE, VERTEX):
            raise ValueError(f"mode {mode!r}")
        self.mode = mode
        self.work_dir = work_dir
        self.workers = workers
        self.artifacts: dict[int, Artifact] = {}
        self.cache: dict[str, Task] = {}
        self.runs: list[Run] = []
        self._lock = threading.Lock()

    def run(self, spec: dict, pipeline_root: str, parameters: dict | None = None) -> Run:
        _refuse_non_containers(spec)
        run = Run(id=f"run-{len(self.runs) + 1}", tasks={})
        self.runs.append(run)
        root = _root_parameters(spec, parameters or {})
        dag = spec["root"]["dag"]["tasks"]
        upstream = {name: set(_upstream(task)) for name, task in dag.items()}
        pending = set(dag)
        with ThreadPoolExecutor(self.workers) as pool:
            running = {}
            while pending or running:
                done_ok = {n for n, t in run.tasks.items() if t.state in ("executed", "cached")}
                stopped = set(run.tasks) - done_ok
                for name in sorted(pending):
                    if upstream[name] & stopped:
                        run.tasks[name] = Task(name, "not run")
                        pending.discard(name)
                        stopped.add(name)
                ready = [n for n in sorted(pending) if upstream[n] <= done_ok]
                for name in ready:
                    pending.discard(name)
                    running[pool.submit(self._task, spec, run, name, root, pipeline_root)] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    run.tasks[name] = future.result()
        return run

    def _task(self, spec: dict, run: Run, name: str, root: dict, pipeline_root: str) -> Task:
        task_spec = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task_spec["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        task_root = os.path.join(pipeline_root, run.id, name)
        executor_input = {
            "inputs": self._inputs(task_spec, component, run, root),
            "outputs": _outputs(component, task_root),
        }
        fingerprint = ""
        if task_spec.get("cachingOptions", {}).get("enableCache"):
            fingerprint = cache_fingerprint(executor_input, component, container)
            with self._lock:
                earlier = self.cache.get(fingerprint)
            if earlier:
                return Task(
                    name,
                    "cached",
                    fingerprint=fingerprint,
                    inputs=executor_input["inputs"],
                    outputs=dict(earlier.outputs),
                    parameters=dict(earlier.parameters),
                )
        started = time.monotonic()
        returncode, log = self._execute(container, executor_input, task_root)
        seconds = time.monotonic() - started
        if returncode != 0:
            return Task(name, "failed", seconds, fingerprint, executor_input["inputs"], log=log)
        output = _executor_output(executor_input["outputs"]["outputFile"])
        task = Task(name, "executed", seconds, fingerprint, executor_input["inputs"], log=log)
        for key, listed in executor_input["outputs"]["artifacts"].items():
            artifact = listed["artifacts"][0]
            written = output.get("artifacts", {}).get(key, {}).get("artifacts", [{}])[0]
            task.outputs[key] = self._record(artifact, written)
        task.parameters = _output_parameters(executor_input["outputs"], output, component)
        if fingerprint:
            with self._lock:
                self.cache[fingerprint] = task
        return task

    def _inputs(self, task_spec: dict, component: dict, run: Run, root: dict) -> dict:
        declared = component.get("inputDefinitions", {})
        parameters = {}
        for name, source in task_spec.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in source:
                value = source["runtimeValue"]["constant"]
            elif "componentInputParameter" in source:
                value = root[source["componentInputParameter"]]
            else:
                producer = source["taskOutputParameter"]
                value = run.tasks[producer["producerTask"]].parameters[
                    producer["outputParameterKey"]
                ]
            kind = declared["parameters"][name]["parameterType"]
            parameters[name] = _as_parameter(value, kind)
        artifacts = {}
        for name, source in task_spec.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifact_id = run.tasks[producer["producerTask"]].outputs[producer["outputArtifactKey"]]
            artifacts[name] = {
                "artifacts": [self._runtime_artifact(artifact_id, declared["artifacts"][name])]
            }
        return {"parameterValues": parameters, "artifacts": artifacts}

    def _runtime_artifact(self, artifact_id: int, declared: dict) -> dict:
        artifact = self.artifacts[artifact_id]
        runtime = {
            "name": str(artifact.id),
            "uri": artifact.uri,
            "metadata": copy.deepcopy(artifact.metadata),
        }
        if self.mode == VERTEX:
            runtime["type"] = declared["artifactType"]
        return runtime

    def _record(self, provisioned: dict, written: dict) -> int:
        """The output artifact in metadata: as provisioned, with what the executor wrote merged."""
        with self._lock:
            artifact_id = len(self.artifacts) + 1
            metadata = {**provisioned.get("metadata", {}), **written.get("metadata", {})}
            # MLMD keeps numbers as doubles; the driver hands them back as numbers.
            metadata = json.loads(json.dumps(metadata), parse_int=float)
            self.artifacts[artifact_id] = Artifact(
                artifact_id, written.get("uri") or provisioned["uri"], provisioned["type"], metadata
            )
        return artifact_id

    def _execute(self, container: dict, executor_input: dict, task_root: str) -> tuple[int, str]:
        os.makedirs(task_root, exist_ok=True)
        for parameter in executor_input["outputs"]["parameters"].values():
            os.makedirs(os.path.dirname(parameter["outputFile"]), exist_ok=True)
        # The pipeline root is a local folder standing in for a bucket, where any key
        # can be written without making its "folders" first. A value artifact's URI
        # is a file (tfx/types/value_artifact.py), as is a page's; any other's is a folder.
        for listed in executor_input["outputs"]["artifacts"].values():
            artifact = listed["artifacts"][0]
            is_file = _title(artifact["type"]) in VALUE_TYPES | PAGE_TYPES
            os.makedirs(
                os.path.dirname(artifact["uri"]) if is_file else artifact["uri"], exist_ok=True
            )
        payload = json.dumps(executor_input)
        command = [part.replace("{{$}}", payload) for part in container["command"]]
        command += [part.replace("{{$}}", payload) for part in container.get("args", [])]
        log = os.path.join(task_root, "executor.log")
        # A pod's /tmp ends with the pod: TFX's tfx_ephemeral builds (52 MB each) land there.
        with open(log, "w") as out, tempfile.TemporaryDirectory(dir=self.work_dir) as pod_tmp:
            try:
                process = subprocess.run(
                    command,
                    cwd=self.work_dir,
                    env={**_image_environment(), "TMPDIR": pod_tmp},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=TASK_DEADLINE_SECONDS,
                )
            except subprocess.TimeoutExpired:
                out.write(f"\nstand-in: killed after {TASK_DEADLINE_SECONDS} s\n")
                return -9, log
        return process.returncode, log

    def artifact(self, run: Run, task: str, key: str) -> Artifact:
        return self.artifacts[run.tasks[task].outputs[key]]


def console_view(artifact: Artifact) -> dict:
    """What the KFP UI shows of an artifact (frontend/src/components/viewers/
    MetricsVisualizations.tsx): nothing without a `display_name`; by type, the file at the
    URI (system.HTML), the confusion matrix once its shape checks (labels as many as rows,
    each row as long), the other custom properties (system.Metrics)."""
    title, metadata = _title(artifact.schema), artifact.metadata
    if not metadata.get("display_name"):
        return {}
    if title == "system.HTML":
        return {"html": Path(artifact.uri).read_text()}
    if title == "system.ClassificationMetrics":
        matrix = metadata["confusionMatrix"]
        labels = [spec["displayName"] for spec in matrix["annotationSpecs"]]
        rows = [row["row"] for row in matrix["rows"]]
        if len(rows) != len(labels) or any(len(row) != len(labels) for row in rows):
            raise ValueError(f"confusionMatrix of {artifact.uri}: not square over its labels")
        return {"labels": labels, "rows": rows}
    if title == "system.Metrics":
        return {key: value for key, value in metadata.items() if key != "display_name"}
    return {}


def _title(artifact_type: dict) -> str:
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return (yaml.safe_load(artifact_type.get("instanceSchema", "")) or {}).get("title", "")


def _refuse_non_containers(spec: dict) -> None:
    for label, executor in spec["deploymentSpec"]["executors"].items():
        if "container" not in executor and "importer" not in executor:
            raise RunRefused(
                f"executor(label={label!r}): non-container and non-importer executor "
                "not implemented"
            )


def _root_parameters(spec: dict, given: dict) -> dict:
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = set(given) - set(declared)
    if unknown:
        raise RunRefused(f"unknown pipeline parameters {sorted(unknown)}")
    values = {}
    for name, definition in declared.items():
        if name in given:
            values[name] = given[name]
        elif "defaultValue" in definition:
            values[name] = definition["defaultValue"]
        elif not definition.get("isOptional"):
            raise RunRefused(f"neither value nor default value provided for parameter {name!r}")
    return values


def _upstream(task: dict) -> list[str]:
    names = set(task.get("dependentTasks", []))
    inputs = task.get("inputs", {})
    for source in inputs.get("parameters", {}).values():
        if "taskOutputParameter" in source:
            names.add(source["taskOutputParameter"]["producerTask"])
    for source in inputs.get("artifacts", {}).values():
        names.add(source["taskOutputArtifact"]["producerTask"])
    return sorted(names)


def _as_parameter(value, kind: str):
    """A parameter value as the driver passes it (structpb: numbers are doubles)."""
    if kind == "STRING":
        if isinstance(value, str):
            return value
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    if kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
        if isinstance(value, str):
            raise TypeError(f"input parameter type mismatch: expect {kind}, got string")
        return float(value)
    return value


def _outputs(component: dict, task_root: str) -> dict:
    declared = component.get("outputDefinitions", {})
    return {
        "artifacts": {
            key: {
                "artifacts": [
                    {
                        "name": key,
                        "uri": os.path.join(task_root, key),
                        "type": spec["artifactType"],
                        "metadata": {},
                    }
                ]
            }
            for key, spec in declared.get("artifacts", {}).items()
        },
        "parameters": {
            key: {"outputFile": os.path.join(task_root, "outputs", key)}
            for key in declared.get("parameters", {})
        },
        "outputFile": os.path.join(task_root, "output_metadata.json"),
    }


def cache_fingerprint(executor_input: dict, component: dict, container: dict) -> str:
    """The sha256 of the cache key, as cacheutils/cache.go builds and hashes it."""
    inputs, outputs = executor_input["inputs"], executor_input["outputs"]
    declared = component.get("outputDefinitions", {}).get("parameters", {})
    key = {
        "inputArtifactNames": {
            name: {"artifactNames": [a["name"] for a in listed["artifacts"]]}
            for name, listed in inputs["artifacts"].items()
        },
        "inputParameterValues": inputs["parameterValues"],
        "outputArtifactsSpec": {
            name: {k: listed["artifacts"][0][k] for k in ("name", "type", "metadata")}
            for name, listed in outputs["artifacts"].items()
        },
        "outputParametersSpec": {
            name: declared[name]["parameterType"] for name in outputs["parameters"]
        },
        "containerSpec": {
            "image": container["image"],
            "cmdArgs": container["command"] + container.get("args", []),
        },
    }
    # Go's encoding/json writes map keys sorted and no spaces.
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _executor_output(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _output_parameters(outputs: dict, written: dict, component: dict) -> dict:
    values = dict(written.get("parameterValues", {}))
    declared = component.get("outputDefinitions", {}).get("parameters", {})
    for name, parameter in outputs["parameters"].items():
        if name in values:
            continue
        with open(parameter["outputFile"]) as f:
            text = f.read()
        kind = declared[name]["parameterType"]
        values[name] = text if kind == "STRING" else json.loads(text)
    return values


def _image_environment() -> dict:
    """The container's environment: the image's settings, this interpreter as `python`."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["TF_USE_LEGACY_KERAS"] = "1"  # the Dockerfile's ENV
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("PYTHONPATH", None)
    return env
