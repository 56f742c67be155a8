"""Records with one defect each, for the validation tests."""

import io
import struct
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

from imgclf.imagedata.records import LabelledImage, to_example


def encode(pixels: np.ndarray, image_format: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=image_format)
    return buffer.getvalue()


def pixels(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def example(image: bytes | None = b"", label=0, record_id: str = "x", **extra) -> bytes:
    """A serialized tf.Example; `image=None` or `label=None` leaves the feature out."""
    features = {}
    if image is not None:
        features["image"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    if isinstance(label, bytes):
        features["label"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[label]))
    elif label is not None:
        features["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    features["id"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[record_id.encode()]))
    for name, value in extra.items():
        features[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def defects() -> dict[str, bytes]:
    """One serialized record per defect, keyed by a name that is also its id."""
    png, jpeg = encode(pixels(1)), encode(pixels(2), "JPEG")
    corrupt = png[:40] + bytes(reversed(png[40:]))
    return {
        "corrupt-bytes": example(corrupt, 0, "corrupt-bytes"),
        "truncated-jpeg": example(jpeg[: len(jpeg) // 2], 1, "truncated-jpeg"),
        "not-an-image": example(b"these are words, not pixels", 2, "not-an-image"),
        "no-image": example(None, 3, "no-image"),
        "no-label": example(png, None, "no-label"),
        "label-as-bytes": example(png, b"1", "label-as-bytes"),
        "label-out-of-range": example(png, 7, "label-out-of-range"),
    }


def declared_png(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (its pixel data is one row): what a
    reader must refuse from the header, before allocating the pixels it declares."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    first_row = zlib.compress(b"\0" * (width + 1))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", first_row)
        + chunk(b"IEND", b"")
    )


def good_variants() -> dict[str, bytes]:
    """Unusual but valid images: grayscale and RGBA, decoded to RGB."""
    return {
        "grayscale": example(encode(pixels(3), mode="L"), 0, "grayscale"),
        "rgba": example(encode(pixels(4), mode="RGBA"), 1, "rgba"),
    }


def write_records(path, records) -> None:
    options = tf.io.TFRecordOptions(compression_type="GZIP" if str(path).endswith(".gz") else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)


def labelled(records: list[LabelledImage]) -> list[bytes]:
    return [to_example(record).SerializeToString() for record in records]
