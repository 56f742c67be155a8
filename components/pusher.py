"""VersionedPusher: a blessed model becomes the next numbered version of the serving folder.

The push itself (the next version, copied in a staging folder renamed into
place, and recorded in the pipeline root) is the model store's
(modelstore/serving_folder.py); this component decides whether to push (the
Evaluator's blessing, the serving check, the serving contract) and records
what it did in its PushedModel artifact.
"""

import datetime
import json
import os
import tempfile

import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from imgclf.components.example_gen import span_of
from imgclf.components.image_validator import REPORT_JSON, ImageValidationReport
from imgclf.components.key_figure import record_key_figure
from imgclf.modelstore.history import contract_change
from imgclf.modelstore.serving_folder import (
    IMAGE_REPORT_DIR,
    PROVENANCE_FILE,
    STATISTICS_DIR,
    TRAIN_STATISTICS,
    latest_is,
    push,
    record_push,
)
from imgclf.settings.names import (
    BLESSED_PROPERTY,
    NOT_PUSHED_PROPERTY,
    PUSHED_DESTINATION_PROPERTY,
    PUSHED_PROPERTY,
    PUSHED_VERSION_PROPERTY,
    PUSHER,
    TEST_ACCURACY_PROPERTY,
)
from imgclf.trainer.export import read_summary


def push_outcome(pushed_model: standard_artifacts.PushedModel | None) -> tuple[int | None, str]:
    """(the version this run pushed, or None; one sentence saying what the Pusher did)."""
    if pushed_model is None:
        return None, "Not pushed: no Pusher ran."
    if pushed_model.get_int_custom_property(PUSHED_PROPERTY):
        destination = pushed_model.get_string_custom_property(PUSHED_DESTINATION_PROPERTY)
        version = pushed_model.get_int_custom_property(PUSHED_VERSION_PROPERTY)
        return version, f"Pushed as version {version}: {destination}"
    if pushed_model.has_custom_property(PUSHED_VERSION_PROPERTY):
        already = pushed_model.get_int_custom_property(PUSHED_VERSION_PROPERTY)
        return None, f"Not pushed: version {already} already is this model."
    if pushed_model.has_custom_property(NOT_PUSHED_PROPERTY):
        why = pushed_model.get_string_custom_property(NOT_PUSHED_PROPERTY)
        return None, f"Not pushed: {why}."
    return None, "Not pushed."


def _provenance(
    model: standard_artifacts.Model,
    model_dir: str,
    blessing: standard_artifacts.ModelBlessing,
    scratch: str,
) -> str:
    path = os.path.join(scratch, "provenance.json")
    accuracy = (
        blessing.get_float_custom_property(TEST_ACCURACY_PROPERTY)
        if blessing.has_custom_property(TEST_ACCURACY_PROPERTY)
        else None
    )
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(
            {
                "span": span_of(model),
                "class_names": read_summary(model_dir)["class_names"],
                "test_accuracy": accuracy,
                "model": model.uri,
                "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            },
            f,
            indent=2,
        )
    return path


@tfx.dsl.components.component
def VersionedPusher(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    model_blessing: tfx.dsl.components.InputArtifact[standard_artifacts.ModelBlessing],
    statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
    image_report: tfx.dsl.components.InputArtifact[ImageValidationReport],
    pushed_model: tfx.dsl.components.OutputArtifact[standard_artifacts.PushedModel],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    push_records_dir: tfx.dsl.components.Parameter[str],
    allow_class_change: tfx.dsl.components.Parameter[int],
    infra_blessing: tfx.dsl.components.InputArtifact[standard_artifacts.InfraBlessing] = None,
) -> None:
    """Pushes the model if the Evaluator blessed it and it passed the serving check, if any,
    and it keeps the served version's classes; records what it did either way.

    `statistics` and `image_report`: the profile of the data the model was trained on.
    `push_records_dir`: where each push is recorded, outside the serving folder.
    `allow_class_change`: 1 to push a model of other classes under the same model name.
    `infra_blessing`: the serving check's (or TFX's InfraValidator's) verdict.
    """
    refused = [
        why
        for why, blessing in (
            ("the Evaluator did not bless it", model_blessing),
            ("it failed the serving check", infra_blessing),
        )
        if blessing is not None and not blessing.get_int_custom_property(BLESSED_PROPERTY)
    ]
    if refused:
        record_key_figure(pushed_model, PUSHER, f"nothing pushed: {' and '.join(refused)}")
        pushed_model.set_int_custom_property(PUSHED_PROPERTY, 0)
        return
    model_dir = path_utils.serving_model_dir(model.uri)
    broken = None if allow_class_change else contract_change(model_dir, serving_model_dir)
    if broken:
        logging.warning(
            "Not pushed: %s. Clients of %s read its answers by the served classes' names: set "
            "evaluation.allow_class_change to push it there anyway, or serve it under another "
            "model_name.",
            broken,
            serving_model_dir,
        )
        record_key_figure(pushed_model, PUSHER, f"nothing pushed: {broken}")
        pushed_model.set_int_custom_property(PUSHED_PROPERTY, 0)
        pushed_model.set_string_custom_property(NOT_PUSHED_PROPERTY, broken)
        return
    # A rerun with nothing new blesses the model it pushed before: serve it, do not copy it.
    already = latest_is(model_dir, serving_model_dir)
    if already is not None:
        logging.info("Version %d already is this model; nothing is pushed.", already)
        record_key_figure(pushed_model, PUSHER, f"version {already} already is this model")
        pushed_model.set_int_custom_property(PUSHED_PROPERTY, 0)
        pushed_model.set_int_custom_property(PUSHED_VERSION_PROPERTY, already)
        return
    with tempfile.TemporaryDirectory() as scratch:
        records = {
            PROVENANCE_FILE: _provenance(model, model_dir, model_blessing, scratch),
            os.path.join(STATISTICS_DIR, TRAIN_STATISTICS): os.path.join(
                statistics.uri, TRAIN_STATISTICS
            ),
            os.path.join(IMAGE_REPORT_DIR, REPORT_JSON): os.path.join(
                image_report.uri, REPORT_JSON
            ),
        }
        destination = push(model_dir, serving_model_dir, records)
    record_push(push_records_dir, destination)
    logging.info("Pushed the model to %s", destination)
    record_key_figure(pushed_model, PUSHER, f"pushed version {os.path.basename(destination)}")
    pushed_model.set_int_custom_property(PUSHED_PROPERTY, 1)
    pushed_model.set_string_custom_property(PUSHED_DESTINATION_PROPERTY, destination)
    pushed_model.set_int_custom_property(
        PUSHED_VERSION_PROPERTY, int(os.path.basename(destination))
    )
