"""The Trainer module: TFX's Trainer calls `trainer.task.run_fn`.

Models are built with tf_keras (Keras 2): TFMA and TF Serving need the TF
SavedModel with signatures that it writes.
"""
