import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.utils import data_utils

from imgclf.settings.config import load_config
from imgclf.settings.model import ModelConfig
from imgclf.trainer.distribution import precision_policy
from imgclf.trainer.model import (
    WeightsMismatchError,
    WeightsUnavailableError,
    base_of,
    build_model,
    compile_model,
    scale_inputs,
    unfreeze_top,
)


@pytest.mark.parametrize(
    ("name", "module"),
    [("MobileNetV2", "mobilenet_v2"), ("ResNet50V2", "resnet_v2"), ("InceptionV3", "inception_v3")],
)
def test_input_scaling_matches_the_architectures_preprocess_input(name, module):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    scaled = keras.Model(inputs, scale_inputs(inputs, name))(pixels).numpy()
    expected = getattr(keras.applications, module).preprocess_input(pixels.copy())
    np.testing.assert_allclose(scaled, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["EfficientNetV2B0", "EfficientNetB0"])
def test_efficientnets_take_raw_pixels(name):
    inputs = keras.Input((8, 8, 3))
    assert scale_inputs(inputs, name) is inputs


def test_the_built_model_has_a_frozen_base_and_a_softmax_head():
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights="none")
    model = build_model(config, num_classes=5, batch_norm_learns=False)
    base = base_of(model)
    assert not base.trainable
    assert model.output_shape == (None, 5)
    trainable = {w.name.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"probabilities"}
    probabilities = model(np.zeros((3, 32, 32, 3), "float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_unfreezing_the_top_keeps_batch_normalization_frozen():
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights="none")
    model = build_model(config, num_classes=3, batch_norm_learns=False)
    unfreeze_top(model, 12, batch_norm=False)
    layers = base_of(model).layers
    for layer in layers[:-12]:
        assert not layer.trainable, layer.name
    for layer in layers[-12:]:
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (not is_batch_norm), layer.name
    assert any(layer.trainable and layer.weights for layer in layers[-12:])


def test_a_weights_file_loads_back_to_identical_predictions(tiny_backbone):
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    loaded = build_model(tiny_backbone, num_classes=3, batch_norm_learns=False)
    again = build_model(tiny_backbone, num_classes=3, batch_norm_learns=False)
    fresh = build_model(
        tiny_backbone.model_copy(update={"weights": "none"}), num_classes=3, batch_norm_learns=False
    )
    features = [keras.Model(m.input, m.get_layer("pooling").output) for m in (loaded, again, fresh)]
    np.testing.assert_array_equal(features[0](pixels).numpy(), features[1](pixels).numpy())
    assert not np.allclose(features[0](pixels).numpy(), features[2](pixels).numpy())


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    config = ModelConfig(base_model="MobileNetV2", image_size=32, weights=str(tmp_path / "x.h5"))
    with pytest.raises(FileNotFoundError, match=r"x\.h5"):
        build_model(config, num_classes=2, batch_norm_learns=False)


def test_a_file_for_another_architecture_is_refused_clearly(tiny_backbone):
    wider = tiny_backbone.model_copy(update={"alpha": 1.0})
    with pytest.raises(WeightsMismatchError, match=r"does not hold weights for MobileNetV2"):
        build_model(wider, num_classes=2, batch_norm_learns=False)
    resnet = ModelConfig(base_model="ResNet50V2", image_size=32, weights=tiny_backbone.weights)
    with pytest.raises(WeightsMismatchError, match=re.escape(tiny_backbone.weights)):
        build_model(resnet, num_classes=2, batch_norm_learns=False)


def test_a_file_that_is_not_hdf5_is_refused_clearly(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"these are not weights")
    config = ModelConfig(base_model="MobileNetV2", image_size=32, weights=str(path))
    with pytest.raises(WeightsMismatchError, match="not an HDF5 weights file"):
        build_model(config, num_classes=2, batch_norm_learns=False)


def test_weights_load_from_any_filesystem_tensorflow_reads(tiny_backbone):
    remote = "ram://weights/tiny.h5"
    tf.io.gfile.copy(tiny_backbone.weights, remote, overwrite=True)
    config = tiny_backbone.model_copy(update={"weights": remote})
    assert load_config({"model.weights": remote}).model.weights == remote
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    from_ram, from_disk = (
        build_model(config, 3, batch_norm_learns=False),
        build_model(tiny_backbone, 3, batch_norm_learns=False),
    )
    np.testing.assert_array_equal(
        base_of(from_ram)(pixels).numpy(), base_of(from_disk)(pixels).numpy()
    )


def test_imagenet_weights_that_cannot_be_downloaded_say_where_to_put_them(monkeypatch, tmp_path):
    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name unknown")

    monkeypatch.setattr(data_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=96)
    with pytest.raises(WeightsUnavailableError) as raised:
        build_model(config, num_classes=2, batch_norm_learns=False)
    message = str(raised.value)
    expected_file = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    assert f"place it in {tmp_path}/models/ (as {expected_file})" in message
    assert "set model.weights to the path of a weights file" in message


def test_an_intermediate_feature_layer_is_flattened_under_a_hidden_layer():
    config = ModelConfig(
        base_model="InceptionV3",
        image_size=75,
        weights="none",
        feature_layer="mixed7",
        head_units=32,
    )
    model = build_model(config, num_classes=3, batch_norm_learns=False)
    assert base_of(model).output.name.startswith("mixed7")
    assert isinstance(model.get_layer("pooling"), keras.layers.Flatten)
    assert model.get_layer("hidden").units == 32
    with pytest.raises(ValueError, match="'mixed99' is not a layer of InceptionV3"):
        build_model(
            config.model_copy(update={"feature_layer": "mixed99"}),
            num_classes=3,
            batch_norm_learns=False,
        )


def test_a_binary_head_is_one_sigmoid_unit_returned_as_two_probabilities():
    config = ModelConfig(
        base_model="MobileNetV2", alpha=0.35, image_size=32, binary=True, weights="none"
    )
    model = build_model(config, num_classes=2, batch_norm_learns=False)
    assert model.get_layer("positive").units == 1
    assert model.get_layer("positive").activation == keras.activations.sigmoid
    probabilities = model(np.zeros((2, 32, 32, 3), "float32")).numpy()
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="exactly 2 classes"):
        build_model(config, num_classes=3, batch_norm_learns=False)


@pytest.mark.slow
def test_mixed_precision_keeps_the_output_in_float32():
    assert precision_policy(True, has_gpu=True) == "mixed_float16"
    assert precision_policy(True, has_gpu=False) == "float32"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights="none")
        model = build_model(config, num_classes=3, batch_norm_learns=False)
        compile_model(model, "adam", 1e-3)
        model.fit(np.zeros((4, 32, 32, 3), "float32"), np.array([0, 1, 2, 0]), verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert base_of(model).layers[-1].compute_dtype == "float16"
    assert model.output.dtype == tf.float32


@pytest.mark.parametrize(("name", "optimizer_class"), [("sgd", "SGD"), ("rmsprop", "RMSprop")])
def test_the_optimizer_is_configurable(name, optimizer_class):
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights="none")
    model = build_model(config, num_classes=2, batch_norm_learns=False)
    compile_model(model, name, 0.05)
    assert type(model.optimizer).__name__ == optimizer_class
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
