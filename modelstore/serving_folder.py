"""The model store: the serving folder TF Serving and KServe read, and what each version records.

TF Serving and KServe watch `<serving root>/<model name>/` and serve the
highest integer-named version folder. TFX's own Pusher names versions by the
clock and copies straight into the version folder, so a server polling at the
wrong moment can find a half-copied model. Here the version is one more than
the highest present, and the copy is made in a hidden staging folder (a name
that is not an integer, which servers ignore) that is renamed into place only
when complete. On object stores (gs://, s3://), where folders cannot be
renamed, the files are copied into place with `saved_model.pb` last: a server
cannot load a version before that file exists.

Each version records, beside the model, the span and classes it was trained on,
its test accuracy and its train split's profile (`read_provenance`). Each push is also recorded
outside the serving folder, in the pipeline root (`record_push`): a serving
folder that loses its versions (deleted, or a share mounted empty) is noticed
by the next run (modelstore/history.py), whatever became of ML Metadata.

No TFX here: the Pusher, ServingHistory, the Evaluator's baseline, the
DataGate, `imgclf report`, `retrain` and `predict` all read and write the
store through this module and modelstore/history.py.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import uuid

import tensorflow as tf
from absl import logging

from imgclf.settings.base import is_remote
from imgclf.trainer.export import EXTRA_ASSETS_DIR

SAVED_MODEL_FILE = "saved_model.pb"
STAGING_PREFIX = ".incoming-"
# What each pushed version records about itself, beside the model (TF Serving ignores
# assets.extra): the span and classes it was trained on, its test accuracy (the second
# model store, modelstore/vertex_registry.py, labels versions with it), its train split's profile
# (statistics and image report), which the next span's drift is measured against.
PROVENANCE_FILE = os.path.join(EXTRA_ASSETS_DIR, "provenance.json")
DATA_DIR = os.path.join(EXTRA_ASSETS_DIR, "data")
# TFX's StatisticsGen writes each split's statistics as Split-<name>/FeatureStats.pb.
STATISTICS_FILE = "FeatureStats.pb"
STATISTICS_DIR = os.path.join(DATA_DIR, "statistics")  # laid out as an ExampleStatistics
IMAGE_REPORT_DIR = os.path.join(DATA_DIR, "image_report")  # as an ImageValidationReport
TRAIN_STATISTICS = os.path.join("Split-train", STATISTICS_FILE)
RECORD_SUFFIX = ".json"
# TF Serving's version folders: decimal ASCII digits only.
_VERSION = re.compile(r"[0-9]+")


def versions(serving_model_dir: str) -> list[int]:
    """The complete versions present, in increasing order: folders named by decimal ASCII
    digits that hold a `saved_model.pb`.

    The serving folder may be shared: anything else in it (a file named `7`, notes,
    another tool's folders) is never counted and never touched, only logged. A version
    folder without its `saved_model.pb` (another tool's copy in progress, or left half
    done) is skipped and named: a server cannot load it either.
    """
    found = []
    for name in _names(serving_model_dir):
        path = os.path.join(serving_model_dir, name)
        if _VERSION.fullmatch(name) and tf.io.gfile.isdir(path):
            if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
                found.append(int(name))
            else:
                logging.warning(
                    "Skipped version %s in %s: it has no %s (a copy in progress, or one left "
                    "half done).",
                    name,
                    serving_model_dir,
                    SAVED_MODEL_FILE,
                )
        elif not name.startswith(STAGING_PREFIX):
            logging.warning("Ignored in the serving folder (not a version folder): %s", path)
    return sorted(found)


def _names(folder: str) -> list[str]:
    if not tf.io.gfile.isdir(folder):
        return []
    return [entry.rstrip("/") for entry in tf.io.gfile.listdir(folder)]


def _next_version(serving_model_dir: str) -> str:
    """One more than any version-like name, so that a stray file named `8` is never a target."""
    taken = [int(name) for name in _names(serving_model_dir) if _VERSION.fullmatch(name)]
    return str(max(taken, default=0) + 1)


def _staging_name(version: str) -> str:
    """A hidden name that says who is copying: a leftover's owner can be checked later."""
    return f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}-{socket.gethostname()}-{os.getpid()}"


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True


def clear_abandoned_staging(serving_model_dir: str) -> list[str]:
    """Removes staging folders whose push died mid-copy; returns them.

    A staging folder of a process still alive, or of another machine, may be a
    push in progress: it is left and logged.
    """
    removed = []
    for name in _names(serving_model_dir):
        if not name.startswith(STAGING_PREFIX):
            continue
        path = os.path.join(serving_model_dir, name)
        owner, _, pid = name.removeprefix(STAGING_PREFIX).rpartition("-")
        host = owner.split("-", 2)[-1]
        if host == socket.gethostname() and pid.isdecimal() and not _is_alive(int(pid)):
            logging.warning("Removing %s: its push (pid %s) died mid-copy.", path, pid)
            tf.io.gfile.rmtree(path)
            removed.append(path)
        else:
            logging.warning("Left %s: it may be a push in progress elsewhere.", path)
    return removed


def latest_is(model_dir: str, serving_model_dir: str) -> int | None:
    """The newest version, if it holds exactly the files of `model_dir` (a rerun's model)."""
    present = versions(serving_model_dir)
    if not present:
        return None
    latest = os.path.join(serving_model_dir, str(present[-1]))
    return present[-1] if model_files(latest) == model_files(model_dir) else None


def model_files(root: str) -> dict[str, bytes]:
    """The files of a SavedModel folder, without what a push records beside the model."""
    found = {}
    for directory, _, files in tf.io.gfile.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if relative == PROVENANCE_FILE or relative.startswith(DATA_DIR + os.sep):
                continue
            with tf.io.gfile.GFile(path, "rb") as f:
                found[relative] = f.read()
    return found


def push(model_dir: str, serving_model_dir: str, records: dict[str, str] | None = None) -> str:
    """Copies the SavedModel in `model_dir` to the next version; returns its folder.

    `records` maps a path inside the version to a file copied there with the model.
    """
    version = _next_version(serving_model_dir)
    destination = os.path.join(serving_model_dir, version)
    tf.io.gfile.makedirs(serving_model_dir)
    if is_remote(serving_model_dir):
        copy_tree(model_dir, destination, records, saved_model_last=True)
        return destination
    clear_abandoned_staging(serving_model_dir)
    staging = os.path.join(serving_model_dir, _staging_name(version))
    try:
        copy_tree(model_dir, staging, records)
        os.rename(staging, destination)  # atomic; fails if the version appeared meanwhile
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
    return destination


def _records_of(push_records_dir: str, serving_model_dir: str) -> str:
    """The records of one serving folder: a folder named for its path."""
    key = hashlib.sha1(serving_model_dir.rstrip("/").encode()).hexdigest()[:12]
    return os.path.join(push_records_dir, key)


def record_push(push_records_dir: str, destination: str) -> None:
    """Records that `destination` (a version folder) was pushed: one small file per push."""
    folder = _records_of(push_records_dir, os.path.dirname(destination))
    tf.io.gfile.makedirs(folder)
    version = os.path.basename(destination)
    pushed_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    with tf.io.gfile.GFile(os.path.join(folder, version + RECORD_SUFFIX), "w") as f:
        json.dump({"destination": destination, "pushed_at": pushed_at}, f)


def recorded_pushes(push_records_dir: str, serving_model_dir: str) -> list[str]:
    """The version folders pushed to `serving_model_dir`, as recorded, oldest first."""
    folder = _records_of(push_records_dir, serving_model_dir)
    recorded = [
        int(name.removesuffix(RECORD_SUFFIX))
        for name in _names(folder)
        if name.endswith(RECORD_SUFFIX) and _VERSION.fullmatch(name.removesuffix(RECORD_SUFFIX))
    ]
    return [os.path.join(serving_model_dir, str(version)) for version in sorted(recorded)]


def copy_tree(
    source: str,
    destination: str,
    records: dict[str, str] | None = None,
    saved_model_last: bool = False,
) -> None:
    """Copies a folder and `records`; `saved_model.pb` last if asked (for object stores)."""
    pairs = []
    for directory, _, files in tf.io.gfile.walk(source):
        for name in files:
            path = os.path.join(directory, name)
            pairs.append((path, os.path.join(destination, os.path.relpath(path, source))))
    pairs += [(path, os.path.join(destination, inside)) for inside, path in (records or {}).items()]
    last = os.path.join(destination, SAVED_MODEL_FILE)
    if saved_model_last:
        pairs.sort(key=lambda pair: pair[1] == last)
    # Each folder once: on GCS every makedirs writes a marker object.
    for folder in sorted({os.path.dirname(target) for _, target in pairs}):
        tf.io.gfile.makedirs(folder)
    for source_file, target in pairs:
        tf.io.gfile.copy(source_file, target, overwrite=True)


def lend_version(serving_model_dir: str, version: int, destination: str) -> str:
    """A served version's files at `destination`, for a reader that needs them laid out as
    its own (TFX's Evaluator, the served model as its baseline); returns "linked" or "copied".

    Hard links where the file system allows, so no byte is copied: the reader only reads,
    and removing `destination` leaves the version whole. A symbolic link to the folder will
    not do: TFX's Evaluator fails on it inside a pipeline run ("Format-Serving; Not a
    directory"). A copy on an object store or another file system.
    """
    source = os.path.join(serving_model_dir, str(version))
    if is_remote(source) or is_remote(destination):
        copy_tree(source, destination)
        return "copied"
    try:
        for directory, _, files in os.walk(source):
            inside = os.path.join(destination, os.path.relpath(directory, source))
            os.makedirs(inside, exist_ok=True)
            for name in files:
                os.link(os.path.join(directory, name), os.path.join(inside, name))
    except OSError as error:  # another file system (EXDEV), or one without hard links
        logging.info("Copying version %d instead of linking it: %s", version, error)
        # Not over links made before the error: writing through one would rewrite the
        # served file in place, truncated first, under a server reading it.
        shutil.rmtree(destination, ignore_errors=True)
        copy_tree(source, destination)
        return "copied"
    return "linked"


def read_provenance(version_dir: str) -> dict | None:
    """What a pushed version records about itself; None for a version pushed without it."""
    path = os.path.join(version_dir, PROVENANCE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
