"""VersionedPusher: a blessed model becomes the next numbered version of the serving directory.

TF Serving and KServe watch `<serving root>/<model name>/` and serve the
highest integer-named version folder. TFX's own Pusher names versions by the
clock and copies straight into the version folder, so a server polling at the
wrong moment can find a half-copied model. Here the version is one more than
the highest present, and the copy is made in a hidden staging folder (a name
that is not an integer, which servers ignore) that is renamed into place only
when complete. On object stores (gs://, s3://), where folders cannot be
renamed, the files are copied into place with `saved_model.pb` last: a server
cannot load a version before that file exists.
"""

import os
import uuid

import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from pipeline.config import is_remote

# Where TFX's Trainer puts the serving model inside its Model artifact.
SERVING_MODEL_DIR = "Format-Serving"
SAVED_MODEL_FILE = "saved_model.pb"
STAGING_PREFIX = ".incoming-"


def versions(serving_model_dir: str) -> list[int]:
    """The integer-named versions present, in increasing order."""
    if not tf.io.gfile.isdir(serving_model_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(serving_model_dir))
    return sorted(int(name) for name in names if name.isdigit())


def latest_is(model_dir: str, serving_model_dir: str) -> int | None:
    """The newest version, if it holds exactly the files of `model_dir` (a rerun's model)."""
    present = versions(serving_model_dir)
    if not present:
        return None
    latest = os.path.join(serving_model_dir, str(present[-1]))
    return present[-1] if _files_of(latest) == _files_of(model_dir) else None


def _files_of(root: str) -> dict[str, bytes]:
    found = {}
    for directory, _, files in tf.io.gfile.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with tf.io.gfile.GFile(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


def push(model_dir: str, serving_model_dir: str) -> str:
    """Copies the SavedModel in `model_dir` to the next version; returns its folder."""
    present = versions(serving_model_dir)
    version = str(present[-1] + 1 if present else 1)
    destination = os.path.join(serving_model_dir, version)
    tf.io.gfile.makedirs(serving_model_dir)
    if is_remote(serving_model_dir):
        _copy_tree(model_dir, destination, last=SAVED_MODEL_FILE)
        return destination
    staging = os.path.join(serving_model_dir, f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        _copy_tree(model_dir, staging)
        os.rename(staging, destination)  # atomic; fails if the version appeared meanwhile
    finally:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
    return destination


def _copy_tree(source: str, destination: str, last: str | None = None) -> None:
    deferred = []
    for directory, _, files in tf.io.gfile.walk(source):
        target = os.path.join(destination, os.path.relpath(directory, source))
        tf.io.gfile.makedirs(target)
        for name in files:
            pair = (os.path.join(directory, name), os.path.join(target, name))
            if directory == source and name == last:
                deferred.append(pair)
            else:
                tf.io.gfile.copy(*pair, overwrite=True)
    for pair in deferred:
        tf.io.gfile.copy(*pair, overwrite=True)


@tfx.dsl.components.component
def VersionedPusher(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    model_blessing: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    pushed_model: tfx.dsl.components.OutputArtifact[standard_artifacts.PushedModel],
    serving_model_dir: tfx.dsl.components.Parameter[str],
) -> None:
    """Pushes the model if the Evaluator blessed it; records what it did either way."""
    if not model_blessing.get_int_custom_property("blessed"):
        logging.info("The model was not blessed; nothing is pushed.")
        pushed_model.set_int_custom_property("pushed", 0)
        return
    model_dir = os.path.join(model.uri, SERVING_MODEL_DIR)
    # A rerun with nothing new blesses the model it pushed before: serve it, do not copy it.
    already = latest_is(model_dir, serving_model_dir)
    if already is not None:
        logging.info("Version %d already is this model; nothing is pushed.", already)
        pushed_model.set_int_custom_property("pushed", 0)
        pushed_model.set_int_custom_property("pushed_version", already)
        return
    destination = push(model_dir, serving_model_dir)
    logging.info("Pushed the model to %s", destination)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", destination)
    pushed_model.set_int_custom_property("pushed_version", int(os.path.basename(destination)))
