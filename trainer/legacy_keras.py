"""Keras 2 (tf_keras) for the Trainer's modules: `from imgclf.trainer.legacy_keras import keras`.

AutoGraph rewrites the Python of every function a `tf.function` calls, except
for the packages its conversion rules leave alone. Those rules name `keras`,
whose code was written to be traced as it is, but not `tf_keras`, the same
code under the name Keras 2 has had since TensorFlow 2.16
(tensorflow/python/autograph/core/config.py, CONVERSION_RULES). So each
process that trains had AutoGraph parse and rewrite Keras' own train, test and
predict steps, its optimizer and the call of every layer of the base before
its first step. The rule added here leaves tf_keras alone as `keras` always
was; a model's own code (a layer subclassed outside tf_keras) is still
converted. The numbers a run gives are the same, epoch for epoch; the time is
not: bench/autograph.py.
"""

import tf_keras as keras
from tensorflow.python.autograph.core import config as autograph_config

KERAS_RULE = autograph_config.DoNotConvert(keras.__name__)
autograph_config.CONVERSION_RULES = (*autograph_config.CONVERSION_RULES, KERAS_RULE)

__all__ = ["keras"]
