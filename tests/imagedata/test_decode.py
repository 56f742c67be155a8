"""Decoding is bounded: an image's size is read from its header and checked first."""

import io

import pytest
import tensorflow as tf
from PIL import Image

from bad_records import declared_png
from imgclf.imagedata.decode import decode_image, header_size, why_undecodable


def _encoded(image_format: str, width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(out, image_format)
    return out.getvalue()


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "BMP"])
def test_the_size_is_read_from_the_header_of_every_format_decoded(image_format):
    encoded = _encoded(image_format)
    assert [int(n) for n in header_size(tf.constant(encoded))] == [200, 300]
    assert why_undecodable(encoded, max_pixels=300 * 200) is None
    assert why_undecodable(encoded, max_pixels=300 * 200 - 1) == (
        "image too large: 300 x 200 pixels, more than the 59999 allowed"
    )


def test_a_huge_declared_image_is_refused_before_its_pixels_are_allocated():
    huge = declared_png(20_000, 20_000)  # 400 million pixels declared in a few KB
    assert why_undecodable(huge, max_pixels=50_000_000) == (
        "image too large: 20000 x 20000 pixels, more than the 50000000 allowed"
    )


def test_the_bound_holds_inside_a_graph_as_in_the_serving_signature():
    decode = tf.function(
        lambda encoded: decode_image(encoded, max_pixels=1000),
        input_signature=[tf.TensorSpec([], tf.string)],
    )
    assert decode(tf.constant(_encoded("PNG", 40, 25))).shape == (25, 40, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        decode(tf.constant(_encoded("JPEG", 40, 26)))


def _damaged_jpeg() -> bytes:
    """A whole JPEG (it ends as JPEGs end) without its frame header: its start-of-frame
    marker made a comment."""
    return _encoded("JPEG").replace(b"\xff\xc0", b"\xff\xfe", 1)


@pytest.mark.parametrize(
    "encoded, why",
    [
        (b"hello, not an image", "not an image: no JPEG, PNG, GIF, BMP header"),
        (_encoded("WEBP"), "unsupported format: WebP (TensorFlow decodes JPEG, PNG, GIF, BMP)"),
        (_encoded("TIFF"), "unsupported format: TIFF (TensorFlow decodes JPEG, PNG, GIF, BMP)"),
        (_encoded("JPEG")[:600], "truncated: a JPEG file without its end (600 bytes)"),
        (_encoded("PNG")[:-20], "truncated: a PNG file without its end"),
        (_damaged_jpeg(), "damaged JPEG: "),
    ],
    ids=["text", "webp", "tiff", "truncated-jpeg", "truncated-png", "damaged-jpeg"],
)
def test_each_file_that_does_not_decode_gets_its_reason(encoded, why):
    assert why_undecodable(encoded, max_pixels=10**6).startswith(why)
