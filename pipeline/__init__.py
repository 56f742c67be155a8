"""The TFX pipeline: configuration, wiring, runners' helpers and the project CLI.

TFMA and TF Serving need a TF SavedModel with signatures, which Keras 2
(tf_keras) writes and Keras 3 does not. TensorFlow 2.16 picks the Keras behind
`tf.keras` when it is first imported, so this must run before it: every entry
point imports this package first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
