import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from bad_records import declared_png
from damaged import half_copied
from imgclf.imagedata.decode import decode_and_resize
from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.trainer.export import (
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    SERVING_DEFAULT,
    SERVING_IMAGES,
    UnloadableModelError,
    export_model,
    export_tflite,
    load_saved_model,
    max_pixels_of,
    read_summary,
)
from imgclf.trainer.model import build_model
from imgclf.trainer.warmup import (
    answer,
    read_warmup_requests,
    warmup_requests,
    write_warmup_requests,
)
from quick_training import MAX_PIXELS

# Largest difference allowed between a TFLite probability and the SavedModel's.
TFLITE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def exported(tiny_backbone, tmp_path_factory):
    model = build_model(tiny_backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    export_dir = str(tmp_path_factory.mktemp("export") / "model")
    summary = {"num_replicas": 1, "phases": []}
    export_model(model, export_dir, list(DEFAULT_CLASSES), 32, "image", summary, MAX_PIXELS)
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    return model, export_dir, records


def test_both_signatures_predict_what_the_in_memory_model_predicts(exported):
    model, export_dir, records = exported
    pixels = tf.stack([decode_and_resize(r.image, 32, MAX_PIXELS) for r in records])
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
    assert read_summary(export_dir) == {
        "num_replicas": 1,
        "phases": [],
        "max_image_pixels": MAX_PIXELS,
    }


def test_the_serving_signature_refuses_an_image_larger_than_the_bound_from_its_header(exported):
    _, export_dir, records = exported
    loaded = tf.saved_model.load(export_dir)
    # 388 KB would declare 20,000 x 20,000 pixels: 1.2 GB decoded; here a few KB declare 100 M.
    huge = declared_png(10_000, 10_000)
    assert len(huge) < 20_000
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image too large: more than "):
        loaded.signatures[SERVING_IMAGES](**{IMAGES_INPUT: tf.constant([records[0].image, huge])})
    # The bound is the model's: what tools scoring with it check first.
    assert max_pixels_of(export_dir) == MAX_PIXELS


def test_signature_inputs_are_named_for_clients(exported):
    _, export_dir, _ = exported
    loaded = tf.saved_model.load(export_dir)
    (image_input,) = loaded.signatures[SERVING_IMAGES].structured_input_signature[1].values()
    assert (image_input.name, image_input.dtype, image_input.shape.as_list()) == (
        IMAGES_INPUT,
        tf.string,
        [None],
    )


def test_warmup_requests_replay_real_images_through_both_signatures(exported, tmp_path):
    model, export_dir, records = exported
    examples = [to_example(r).SerializeToString() for r in records]
    write_warmup_requests(export_dir, warmup_requests(examples, "image"))

    # Read back as TF Serving does: TFRecords of PredictionLog, each a PredictRequest.
    logs = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(
            f"{export_dir}/assets.extra/tf_serving_warmup_requests"
        )
    ]
    requests = [log.predict_log.request for log in logs]
    assert [
        (r.model_spec.signature_name, r.inputs[name].tensor_shape.dim[0].size)
        for r, name in zip(requests, [IMAGES_INPUT] * 2 + [EXAMPLES_INPUT] * 2)
    ] == [
        (SERVING_IMAGES, 1),
        (SERVING_IMAGES, len(records)),
        (SERVING_DEFAULT, 1),
        (SERVING_DEFAULT, len(records)),
    ]
    pixels = tf.stack([decode_and_resize(r.image, 32, MAX_PIXELS) for r in records])
    expected = model(pixels, training=False).numpy()
    loaded = tf.saved_model.load(export_dir)
    for request in requests:
        answered = answer(loaded, request)["probabilities"].numpy()
        np.testing.assert_allclose(answered, expected[: len(answered)], atol=1e-5)
    assert len(read_warmup_requests(export_dir)) == 4


def test_the_tflite_model_predicts_what_the_saved_model_predicts(exported):
    model, export_dir, records = exported
    path = export_tflite(model, export_dir, list(DEFAULT_CLASSES))
    with open(f"{export_dir}/tflite/labels.txt") as f:
        assert f.read().split() == list(DEFAULT_CLASSES)

    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    (given,), (taken,) = interpreter.get_input_details(), interpreter.get_output_details()
    served = tf.saved_model.load(export_dir).signatures[SERVING_IMAGES]
    for record in records:
        pixels = decode_and_resize(record.image, 32, MAX_PIXELS)[tf.newaxis].numpy()
        interpreter.set_tensor(given["index"], pixels)
        interpreter.invoke()
        on_device = interpreter.get_tensor(taken["index"])
        expected = served(**{IMAGES_INPUT: tf.constant([record.image])})["probabilities"].numpy()
        # Float32 throughout: only float rounding may differ.
        np.testing.assert_allclose(on_device, expected, atol=TFLITE_TOLERANCE)
        assert on_device.argmax() == expected.argmax()


@pytest.mark.parametrize(
    "damaged, reason",
    [("variables", "Read less bytes than requested"), ("saved_model.pb", "Cannot parse file")],
)
def test_a_damaged_model_is_named_as_such_when_loaded(exported, tmp_path, damaged, reason):
    _, export_dir, _ = exported
    copy = half_copied(export_dir, str(tmp_path / "3"), damaged)
    with pytest.raises(UnloadableModelError) as raised:
        load_saved_model(copy)
    message = str(raised.value)
    assert message.startswith(f"The model in {copy} cannot be loaded ({reason}")
    assert "move it out of the serving folder" in message
