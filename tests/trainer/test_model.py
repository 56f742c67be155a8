import numpy as np
import pytest
import tf_keras as keras

from pipeline.config import ModelConfig
from trainer.model import base_of, build_model, scale_inputs, unfreeze_top


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
    model = build_model(config, num_classes=5)
    base = base_of(model)
    assert not base.trainable
    assert model.output_shape == (None, 5)
    trainable = {w.name.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"probabilities"}
    probabilities = model(np.zeros((3, 32, 32, 3), "float32")).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_unfreezing_the_top_keeps_batch_normalization_frozen():
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights="none")
    model = build_model(config, num_classes=3)
    unfreeze_top(model, 12)
    layers = base_of(model).layers
    for layer in layers[:-12]:
        assert not layer.trainable, layer.name
    for layer in layers[-12:]:
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (not is_batch_norm), layer.name
    assert any(layer.trainable and layer.weights for layer in layers[-12:])


def test_a_weights_file_loads_back_to_identical_predictions(tiny_backbone):
    pixels = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    loaded = build_model(tiny_backbone, num_classes=3)
    again = build_model(tiny_backbone, num_classes=3)
    fresh = build_model(tiny_backbone.model_copy(update={"weights": "none"}), num_classes=3)
    features = [keras.Model(m.input, m.get_layer("pooling").output) for m in (loaded, again, fresh)]
    np.testing.assert_array_equal(features[0](pixels).numpy(), features[1](pixels).numpy())
    assert not np.allclose(features[0](pixels).numpy(), features[2](pixels).numpy())


def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    config = ModelConfig(base_model="MobileNetV2", image_size=32, weights=str(tmp_path / "x.h5"))
    with pytest.raises(FileNotFoundError, match=r"x\.h5"):
        build_model(config, num_classes=2)
