"""Turning encoded image bytes into model input, the same way in training and serving.

Every decode is bounded: the image's width and height are read from its header
first (TensorFlow ops, so the bound holds inside the serving signature too), and
an image of more than `max_pixels` pixels is refused before any pixel is
allocated. A 400 KB PNG can declare 20,000 x 20,000 pixels: 1.2 GB decoded.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import tensorflow as tf

CHANNELS = 3
TOO_LARGE = "image too large"


class Signature(NamedTuple):
    """How a format's file starts (`magic` at `offset`) and, when it has one, ends."""

    name: str
    magic: bytes
    end: bytes = b""
    offset: int = 0

    def matches(self, encoded: bytes) -> bool:
        return encoded[self.offset : self.offset + len(self.magic)] == self.magic


# What tf.io.decode_image reads; a file that does not end as its format ends was cut short.
DECODABLE_FORMATS = (
    Signature("JPEG", b"\xff\xd8\xff", end=b"\xff\xd9"),
    Signature("PNG", b"\x89PNG\r\n\x1a\n", end=b"IEND\xaeB`\x82"),
    Signature("GIF", b"GIF8", end=b";"),
    Signature("BMP", b"BM"),
)
# Photo formats people bring that it does not read (a phone's HEIC renamed .jpg, a scan).
OTHER_FORMATS = (
    Signature("WebP", b"WEBP", offset=8),
    Signature("HEIC", b"ftypheic", offset=4),
    Signature("HEIF", b"ftypmif1", offset=4),
    Signature("AVIF", b"ftypavif", offset=4),
    Signature("TIFF", b"II*\0"),
    Signature("TIFF", b"MM\0*"),
)
DECODABLE_NAMES = ", ".join(sign.name for sign in DECODABLE_FORMATS)
# What TensorFlow and libjpeg print for a file that does not decode, straight to the
# screen: a command that reports each file with why_undecodable's reason filters them out.
DECODER_NOISE = re.compile(
    r"local_rendezvous\.cc.*Local rendezvous is aborting"
    r"|(jpeg_mem|png_io|gif_io)\.cc"
    r"|^(Premature end of JPEG file|Corrupt JPEG data|Invalid JPEG file structure"
    r"|Improper call to JPEG library|Not a JPEG file|Bogus |Unsupported marker"
    r"|Huffman table|Quantization table|libpng (warning|error))"
)
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
    """None when the bytes decode as an image; otherwise why not, in one line: too large,
    not an image, a format TensorFlow does not decode, truncated, or damaged."""
    decodable = _format_of(encoded, DECODABLE_FORMATS)
    if decodable is None:
        if other := _format_of(encoded, OTHER_FORMATS):
            return f"unsupported format: {other.name} (TensorFlow decodes {DECODABLE_NAMES})"
        return f"not an image: no {DECODABLE_NAMES} header"
    try:
        decode_image(encoded, max_pixels)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        # First: what a cut-short header declares (its size too) is not to be trusted.
        if not encoded.rstrip(b"\0").endswith(decodable.end):
            return f"truncated: a {decodable.name} file without its end ({len(encoded)} bytes)"
        message = op_message(error)
        return message if message.startswith(TOO_LARGE) else f"damaged {decodable.name}: {message}"
    return None


def _format_of(encoded: bytes, formats: tuple[Signature, ...]) -> Signature | None:
    return next((sign for sign in formats if sign.matches(encoded)), None)


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
