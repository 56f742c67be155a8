"""Every component container's entrypoint: TFX's Kubeflow V2 executor runner, with five guards.

TFX 1.16's runner was written for Vertex AI. Under open-source KFP 2 two
problems are reported (sky-uk/kfp-operator, kubeflow/pipelines#13476):

1. The driver may hand over input artifacts whose type is empty or a generic
   `system.*` title. TFX then fails before the executor starts: it finds the
   artifact's Python class from the type's title (an empty instance schema
   raises AttributeError, `system.Model` an ImportError). This entrypoint
   gives such an artifact the type the component declares for that input,
   which TFX passes along as `--json_serialized_inputs_spec_args`.
2. The process can abort in C++ destructors at interpreter exit ("pure virtual
   method called") after the executor has written its outputs, failing a task
   that succeeded. Once TFX's runner returns, this process exits at once.
3. TensorFlow's GCS file system writes a zero-byte object `<folder>/` for each
   folder it makes. The open-source launcher downloads an input artifact by
   listing every object under its key and writes such a marker as a file, so
   the folder's real files then fail ("mkdir ...: not a directory",
   kubeflow/pipelines#13476; backend/src/v2/objectstore/object_store.go,
   DownloadBlob). Once the executor has written its outputs, the markers under
   each gs:// output artifact are deleted: an object store needs no folders.
4. In a multi-worker job (kubeflow/multi_worker.py) every replica runs this
   entrypoint with the same arguments. Only the chief's executor output
   counts; the other workers write theirs to scratch, not over the chief's.
5. The artifacts the consoles render are typed `system.HTML`, `system.Metrics`
   and `system.ClassificationMetrics` (components/console.py), titles TFX
   would import as class paths; they are added to the titles TFX looks up
   first (compiler_utils.TITLE_TO_CLASS_PATH, read by
   kubeflow_v2_entrypoint_utils._retrieve_class_path).

Arguments are TFX's runner's own; this module only rewrites the executor input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

import yaml

# Every component container's command (kubeflow/Dockerfile's ENTRYPOINT).
ENTRYPOINT = ["python", "-m", "imgclf.kubeflow.entrypoint"]
INVOCATION_ARG = "--json_serialized_invocation_args"
INPUTS_SPEC_ARG = "--json_serialized_inputs_spec_args"
GCS = "gs://"


def fill_input_types(executor_input_json: str, inputs_spec_json: str | None) -> str:
    """The executor input, each input artifact typed as declared where its type is unusable."""
    executor_input = json.loads(executor_input_json)
    if not inputs_spec_json:
        return executor_input_json
    declared = json.loads(inputs_spec_json).get("artifacts", {})
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        declared_type = declared.get(key, {}).get("artifactType")
        if not declared_type:
            continue
        for artifact in artifact_list.get("artifacts", []):
            if not _names_a_tfx_type(artifact.get("type", {})):
                artifact["type"] = declared_type
    return json.dumps(executor_input)


def _names_a_tfx_type(type_schema: dict) -> bool:
    title = type_schema.get("schemaTitle")
    if "instanceSchema" in type_schema:
        title = (yaml.safe_load(type_schema["instanceSchema"]) or {}).get("title")
    return bool(title) and not title.startswith("system.")


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """TFX's runner's flags; the rest are Beam's arguments."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument(INVOCATION_ARG, required=True)
    parser.add_argument(INPUTS_SPEC_ARG)
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> None:
    # Imported here: TFX and TensorFlow take seconds to import, the guards above none.
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    from imgclf.trainer.distribution import is_chief

    know_console_types()

    args, beam_args = _parse(argv)
    args.json_serialized_invocation_args = fill_input_types(
        args.json_serialized_invocation_args, args.json_serialized_inputs_spec_args
    )
    if not is_chief():
        with tempfile.TemporaryDirectory() as scratch:
            args.json_serialized_invocation_args = output_file_in(
                args.json_serialized_invocation_args, scratch
            )
            kubeflow_v2_run_executor.main((args, beam_args))
        return
    kubeflow_v2_run_executor.main((args, beam_args))
    for uri in output_uris(args.json_serialized_invocation_args):
        if uri.startswith(GCS):
            remove_folder_markers(uri)


def know_console_types() -> None:
    """Guard 5: TFX finds the consoles' types by their titles."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    from imgclf.components.console import CLASS_PATHS

    compiler_utils.TITLE_TO_CLASS_PATH.update(CLASS_PATHS)


def output_file_in(executor_input_json: str, folder: str) -> str:
    """The executor input, its output file moved into `folder` (guard 4)."""
    executor_input = json.loads(executor_input_json)
    executor_input["outputs"]["outputFile"] = os.path.join(folder, "executor_output.json")
    return json.dumps(executor_input)


def output_uris(executor_input_json: str) -> list[str]:
    outputs = json.loads(executor_input_json).get("outputs", {}).get("artifacts", {})
    return [a["uri"] for listed in outputs.values() for a in listed.get("artifacts", [])]


def remove_folder_markers(uri: str, client=None) -> list[str]:
    """Deletes the zero-byte `.../` objects at and under a gs:// artifact; returns their names."""
    from google.cloud import storage

    bucket_name, _, key = uri.removeprefix(GCS).partition("/")
    key = key.rstrip("/")
    bucket = (client or storage.Client()).bucket(bucket_name)
    removed = []
    for blob in bucket.list_blobs(prefix=key):
        under = blob.name == key + "/" or blob.name.startswith(key + "/")
        if under and blob.name.endswith("/") and not blob.size:
            blob.delete()
            removed.append(blob.name)
    if removed:
        logging.info("Deleted %d folder marker(s) under %s.", len(removed), uri)
    return removed


if __name__ == "__main__":
    import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

    main(sys.argv[1:])
    # The outputs are written; skip the interpreter's teardown (guard 2 above).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
