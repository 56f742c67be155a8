"""The Evaluator's executor, through TFX's and TFMA's own: a served baseline that cannot load."""

import json
import shutil

import pytest
import tensorflow as tf
import tf_keras as keras
from tfx.components.evaluator import constants
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import path_utils, proto_utils

from damaged import half_copied
from imgclf.components.evaluation import BASELINE, CANDIDATE, make_eval_config, read_metrics
from imgclf.components.evaluator import Executor
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.checks import EvaluationConfig
from imgclf.settings.data import DataConfig
from imgclf.settings.names import BASELINE_VERSION, BLESSED_PROPERTY, EVAL_SPLIT, SERVING_MODEL_DIR
from imgclf.trainer.export import UnloadableModelError, export_model
from imgclf.trainer.model import OUTPUT_NAME
from quick_training import MAX_PIXELS

SIZE = 32
CLASSES = list(DEFAULT_CLASSES)
EVAL_RECORDS = 2 * len(CLASSES)


def _constant_model() -> keras.Model:
    """The smallest classifier export_model takes: pooled pixels into the softmax layer."""
    pixels = keras.Input((SIZE, SIZE, 3), name="pixels")
    pooled = keras.layers.GlobalAveragePooling2D()(pixels)
    softmax = keras.layers.Dense(len(CLASSES), "softmax", name=OUTPUT_NAME)
    return keras.Model(pixels, softmax(pooled))


def _artifact(kind, uri) -> standard_artifacts.Artifact:
    artifact = kind()
    artifact.uri = str(uri)
    return artifact


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    """Examples of the test split and a candidate, as ExampleGen and the Trainer leave them."""
    root = tmp_path_factory.mktemp("evaluator")
    examples = _artifact(standard_artifacts.Examples, root / "examples")
    examples.split_names = artifact_utils.encode_split_names([EVAL_SPLIT])
    split = root / "examples" / f"Split-{EVAL_SPLIT}"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data.gz"), "GZIP") as writer:
        for record in generate_split(
            DEFAULT_CLASSES, "eval", EVAL_RECORDS // len(CLASSES), size=SIZE
        ):
            writer.write(to_example(record).SerializeToString())
    model = _artifact(standard_artifacts.Model, root / "model")
    export_model(
        _constant_model(),
        path_utils.serving_model_dir(model.uri),
        CLASSES,
        SIZE,
        "image",
        {},
        MAX_PIXELS,
    )
    return examples, model


def _evaluate(
    candidate, tmp_path, serving, baseline_version: int, beam_pipeline_args: list[str] = ()
) -> standard_artifacts.Artifact:
    """TFX's Evaluator through ours, against served `baseline_version`; returns the blessing."""
    examples, model = candidate
    config = make_eval_config(EvaluationConfig(), DataConfig(), len(CLASSES))
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=list(beam_pipeline_args),
        tmp_dir=str(tmp_path / "tmp"),
        unique_id="1",
    )
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    Executor(context).Do(
        {
            standard_component_specs.EXAMPLES_KEY: [examples],
            standard_component_specs.MODEL_KEY: [model],
        },
        {
            standard_component_specs.EVALUATION_KEY: [
                _artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
            ],
            standard_component_specs.BLESSING_KEY: [blessing],
        },
        {
            standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(config),
            standard_component_specs.EXAMPLE_SPLITS_KEY: json.dumps([EVAL_SPLIT]),
            BASELINE_VERSION: baseline_version,
            SERVING_MODEL_DIR: str(serving),
        },
    )
    return blessing


@pytest.mark.slow
def test_the_served_baseline_is_compared_and_named_in_the_blessing(candidate, tmp_path):
    _, model = candidate
    serving = tmp_path / "serving"
    shutil.copytree(path_utils.serving_model_dir(model.uri), serving / "2")
    blessing = _evaluate(candidate, tmp_path, serving, baseline_version=2)
    baseline_uri = constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY
    assert blessing.get_string_custom_property(baseline_uri) == str(serving / "2")
    assert set(read_metrics(str(tmp_path / "evaluation"), "label")) == {CANDIDATE, BASELINE}


@pytest.mark.slow
def test_a_served_baseline_that_cannot_be_loaded_is_named(candidate, tmp_path):
    _, model = candidate
    serving = tmp_path / "serving"
    served = half_copied(path_utils.serving_model_dir(model.uri), str(serving / "1"))
    with pytest.raises(UnloadableModelError) as raised:
        _evaluate(candidate, tmp_path, serving, baseline_version=1)
    assert str(raised.value).startswith(
        f"The model in {served} cannot be loaded (Read less bytes than requested)"
    )
    assert not (tmp_path / "blessing" / "BLESSED").exists()


@pytest.mark.slow
def test_on_beams_portable_path_the_workers_load_the_model_and_measure_the_same(
    candidate, tmp_path, portable_beam
):
    """TFMA's code runs in SDK workers whose environment does not choose Keras 2: the
    preset's plugin does, or Keras 3 could not load the Trainer's SavedModel."""
    serving = tmp_path / "serving"
    shutil.copytree(path_utils.serving_model_dir(candidate[1].uri), serving / "2")
    direct = _evaluate(candidate, tmp_path / "direct", serving, baseline_version=2)
    arguments = portable_beam.arguments()
    portable = _evaluate(candidate, tmp_path / "portable", serving, 2, arguments)
    figures = [
        read_metrics(str(tmp_path / run / "evaluation"), "label") for run in ("direct", "portable")
    ]
    assert repr(figures[0]) == repr(figures[1])  # repr: a precision of no prediction is nan
    assert figures[1][CANDIDATE].overall["example_count"] == EVAL_RECORDS
    assert set(figures[1]) == {CANDIDATE, BASELINE}
    blessed = [b.get_int_custom_property(BLESSED_PROPERTY) for b in (direct, portable)]
    assert blessed[0] == blessed[1]
    without_plugin = [a for a in arguments if not a.startswith("--beam_plugins")]
    with pytest.raises(Exception, match="Keras 3 only supports V3"):
        _evaluate(candidate, tmp_path / "keras3", serving, 2, without_plugin)
