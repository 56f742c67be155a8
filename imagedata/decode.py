"""Turning encoded image bytes into model input, the same way in training and serving.

Every decode is bounded: the image's width and height are read from its header
first (TensorFlow ops, so the bound holds inside the serving signature too), and
an image of more than `max_pixels` pixels is refused before any pixel is
allocated. A 400 KB PNG can declare 20,000 x 20,000 pixels: 1.2 GB decoded.
"""

from __future__ import annotations

import re

import tensorflow as tf

CHANNELS = 3
TOO_LARGE = "image too large"
# The first bytes of each format, and where its header keeps the width and height:
# PNG's IHDR (big-endian 32-bit at 16 and 20), GIF's logical screen (little-endian
# 16-bit at 6 and 8), BMP's BITMAPINFOHEADER (little-endian 32-bit at 18 and 22, the
# height negative for top-down rows). JPEG's size is in a frame marker anywhere in
# its header: tf.io.extract_jpeg_shape finds it without decoding.
_HEADER_BYTES = 26
# The assertion's data, as eager and graph execution print it: the bound, height, width.
_TOO_LARGE_DATA = re.compile(
    rf"{TOO_LARGE}: more than (\d+) pixels \(height, width\):\W+(\d+)\W+(\d+)"
)


def decode_image(encoded: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """JPEG, PNG, GIF or BMP bytes to a uint8 [height, width, 3] tensor.

    Grayscale and RGBA images become RGB, so every image the model sees has
    three channels. Bytes that are not a whole image, or an image of more than
    `max_pixels` pixels, raise InvalidArgumentError.
    """
    height, width = header_size(encoded)
    within = tf.debugging.Assert(
        height * width <= max_pixels,
        [f"{TOO_LARGE}: more than {max_pixels} pixels (height, width):", height, width],
    )
    with tf.control_dependencies([within]):
        return tf.io.decode_image(encoded, channels=CHANNELS, expand_animations=False)


def header_size(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) as int64 scalars from the image's header; (0, 0) for another format."""
    head = tf.io.decode_raw(
        tf.strings.substr(
            tf.strings.join([tf.strings.substr(encoded, 0, _HEADER_BYTES), "\0" * _HEADER_BYTES]),
            0,
            _HEADER_BYTES,
        ),
        tf.uint8,
    )
    head = tf.cast(head, tf.int64)

    def number(offset: int, size: int, big_endian: bool) -> tf.Tensor:
        places = range(size) if big_endian else reversed(range(size))
        value = tf.constant(0, tf.int64)
        for place in places:
            value = value * 256 + head[offset + place]
        return value

    def signed32(value: tf.Tensor) -> tf.Tensor:
        return tf.where(value >= 2**31, value - 2**32, value)

    def starts(magic: bytes) -> tf.Tensor:
        return tf.reduce_all(head[: len(magic)] == list(magic))

    def jpeg() -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
        return shape[0], shape[1]

    zero = tf.constant(0, tf.int64)
    return tf.case(
        [
            (starts(b"\xff\xd8\xff"), jpeg),
            (starts(b"\x89PNG"), lambda: (number(20, 4, True), number(16, 4, True))),
            (starts(b"GIF8"), lambda: (number(8, 2, False), number(6, 2, False))),
            (
                starts(b"BM"),
                lambda: (tf.abs(signed32(number(22, 4, False))), number(18, 4, False)),
            ),
        ],
        default=lambda: (zero, zero),
    )


def why_undecodable(encoded: bytes, max_pixels: int) -> str | None:
    """None when the bytes decode as an image; otherwise the decoder's reason, in one line."""
    try:
        decode_image(encoded, max_pixels)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return op_message(error)
    return None


def op_message(error: tf.errors.OpError) -> str:
    """TensorFlow's message in one line, without its '{{function_node ...}}' and '[Op:...]'
    wrapping; an assertion's data as 'height x width'."""
    if too_large := _TOO_LARGE_DATA.search(error.message):
        limit, height, width = too_large.groups()
        return f"{TOO_LARGE}: {width} x {height} pixels, more than the {limit} allowed"
    lines = error.message.strip().splitlines()
    message = lines[0].split("}} ")[-1].split(" [Op:")[0].strip() if lines else ""
    return message or type(error).__name__


def decode_and_resize(encoded: tf.Tensor, image_size: int, max_pixels: int) -> tf.Tensor:
    """Encoded bytes to float32 [image_size, image_size, 3] pixels in [0, 255]."""
    image = tf.image.resize(decode_image(encoded, max_pixels), [image_size, image_size])
    return tf.ensure_shape(image, [image_size, image_size, CHANNELS])


def decode_and_resize_batch(encoded: tf.Tensor, image_size: int, max_pixels: int) -> tf.Tensor:
    """A [batch] string tensor of encoded images to a float32 pixel batch."""
    return tf.map_fn(
        lambda one: decode_and_resize(one, image_size, max_pixels),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, CHANNELS], tf.float32),
    )
