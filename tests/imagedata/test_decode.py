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


def test_bytes_that_are_no_image_still_get_the_decoders_reason():
    assert why_undecodable(b"words", max_pixels=100).startswith("Unknown image file format")
