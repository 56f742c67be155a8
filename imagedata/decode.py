"""Turning encoded image bytes into model input, the same way in training and serving."""

from __future__ import annotations

import tensorflow as tf

CHANNELS = 3


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG, PNG, GIF or BMP bytes to a uint8 [height, width, 3] tensor.

    Grayscale and RGBA images become RGB, so every image the model sees has
    three channels. Bytes that are not a whole image raise InvalidArgumentError.
    """
    return tf.io.decode_image(encoded, channels=CHANNELS, expand_animations=False)


def why_undecodable(encoded: bytes) -> str | None:
    """None when the bytes decode as an image; otherwise the decoder's reason, in one line."""
    try:
        decode_image(encoded)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return error.message.splitlines()[0] if error.message else type(error).__name__
    return None


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes to float32 [image_size, image_size, 3] pixels in [0, 255]."""
    image = tf.image.resize(decode_image(encoded), [image_size, image_size])
    return tf.ensure_shape(image, [image_size, image_size, CHANNELS])


def decode_and_resize_batch(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """A [batch] string tensor of encoded images to a float32 pixel batch."""
    return tf.map_fn(
        lambda one: decode_and_resize(one, image_size),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, CHANNELS], tf.float32),
    )
