"""Keras' own code is traced as written; a model's own code is still converted by AutoGraph."""

import numpy as np
import tensorflow as tf
from tensorflow.python.autograph.impl import conversion

from imgclf.trainer.legacy_keras import keras


class _ClipsWhenLarge(keras.layers.Layer):
    """A layer of a model's own, with Python control flow on a tensor: it needs AutoGraph."""

    def call(self, inputs):
        if tf.reduce_max(inputs) > 1.0:
            return tf.clip_by_value(inputs, 0.0, 1.0)
        return inputs


def test_keras_own_steps_are_left_to_run_as_written():
    for keras_function in (
        keras.Model.train_step,
        keras.Model.test_step,
        keras.layers.Dense.call,
        keras.optimizers.Adam.apply_gradients,
    ):
        assert conversion.is_allowlisted(keras_function), keras_function
    assert not conversion.is_allowlisted(_ClipsWhenLarge.call)


def test_a_layer_of_a_model_s_own_still_branches_on_tensors_in_fit_and_predict():
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(_ClipsWhenLarge()(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[0.5, 3.0], [0.2, 0.1]], np.float32)
    model.fit(x, np.zeros((2, 1), np.float32), epochs=1, verbose=0)
    clipped = keras.Model(inputs, model.layers[1].output).predict(x, verbose=0)
    np.testing.assert_allclose(clipped, [[0.5, 1.0], [0.2, 0.1]])
