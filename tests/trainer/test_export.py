import numpy as np
import pytest
import tensorflow as tf

from imgclf.imagedata.decode import decode_and_resize
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.trainer.export import (
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    SERVING_DEFAULT,
    SERVING_IMAGES,
    export_model,
    read_summary,
)
from imgclf.trainer.model import build_model


@pytest.fixture(scope="module")
def exported(tiny_backbone, tmp_path_factory):
    model = build_model(tiny_backbone, num_classes=len(DEFAULT_CLASSES))
    export_dir = str(tmp_path_factory.mktemp("export") / "model")
    summary = {"num_replicas": 1, "phases": []}
    export_model(model, export_dir, list(DEFAULT_CLASSES), 32, "image", summary)
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    return model, export_dir, records


def test_both_signatures_predict_what_the_in_memory_model_predicts(exported):
    model, export_dir, records = exported
    pixels = tf.stack([decode_and_resize(r.image, 32) for r in records])
    expected = model(pixels, training=False).numpy()

    loaded = tf.saved_model.load(export_dir)
    images = tf.constant([r.image for r in records])
    examples = tf.constant([to_example(r).SerializeToString() for r in records])
    by_image = loaded.signatures[SERVING_IMAGES](**{IMAGES_INPUT: images})
    by_example = loaded.signatures[SERVING_DEFAULT](**{EXAMPLES_INPUT: examples})

    for outputs in (by_image, by_example):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
        ids = expected.argmax(axis=1)
        np.testing.assert_array_equal(outputs["class_ids"].numpy(), ids)
        names = [name.decode() for name in outputs["class_names"].numpy()]
        assert names == [DEFAULT_CLASSES[i] for i in ids]


def test_the_model_carries_its_labels_and_training_summary(exported):
    _, export_dir, _ = exported
    with open(f"{export_dir}/assets/labels.txt") as f:
        assert f.read().split() == list(DEFAULT_CLASSES)
    assert read_summary(export_dir) == {"num_replicas": 1, "phases": []}


def test_signature_inputs_are_named_for_clients(exported):
    _, export_dir, _ = exported
    loaded = tf.saved_model.load(export_dir)
    (image_input,) = loaded.signatures[SERVING_IMAGES].structured_input_signature[1].values()
    assert (image_input.name, image_input.dtype, image_input.shape.as_list()) == (
        IMAGES_INPUT,
        tf.string,
        [None],
    )
