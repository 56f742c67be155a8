"""A procedurally drawn image dataset that a small network learns in seconds on a CPU.

Each class is a shape (circle, square, ...) drawn in a random colour, size,
position and rotation on a noisy background of another random colour. The
nuisance variation makes the task a real one; the shapes keep it learnable,
so accuracy well above chance proves that a pipeline learns.

Every image is drawn from a random generator seeded with (seed, split, index),
so the same arguments always give byte-identical files.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw

from imgclf.imagedata.records import LabelledImage, write_dataset, write_span

# Shapes are drawn on a canvas this many times larger, then downsampled, for smooth edges.
_SUPERSAMPLE = 4

Drawer = Callable[[ImageDraw.ImageDraw, float, float, float, float, tuple], None]


def _polygon(cx: float, cy: float, r: float, angle: float, corners: int) -> list[tuple]:
    return [
        (
            cx + r * math.cos(angle + 2 * math.pi * k / corners),
            cy + r * math.sin(angle + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def _rotated(points: Sequence[tuple], cx: float, cy: float, angle: float) -> list[tuple]:
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in points
    ]


def _bar(cx, cy, length, width, angle):
    half_l, half_w = length / 2, width / 2
    corners = [
        (cx - half_l, cy - half_w),
        (cx + half_l, cy - half_w),
        (cx + half_l, cy + half_w),
        (cx - half_l, cy + half_w),
    ]
    return _rotated(corners, cx, cy, angle)


def _circle(draw, cx, cy, r, angle, colour):
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)


def _ring(draw, cx, cy, r, angle, colour):
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(1, int(r / 3)))


def _square(draw, cx, cy, r, angle, colour):
    draw.polygon(_polygon(cx, cy, r * 1.2, math.pi / 4 + angle * 0.3, 4), fill=colour)


def _diamond(draw, cx, cy, r, angle, colour):
    points = [(cx, cy - r * 1.2), (cx + r * 0.7, cy), (cx, cy + r * 1.2), (cx - r * 0.7, cy)]
    draw.polygon(_rotated(points, cx, cy, angle * 0.3), fill=colour)


def _triangle(draw, cx, cy, r, angle, colour):
    draw.polygon(_polygon(cx, cy, r * 1.2, -math.pi / 2 + angle * 0.3, 3), fill=colour)


def _plus(draw, cx, cy, r, angle, colour):
    for bar_angle in (0.0, math.pi / 2):
        draw.polygon(_bar(cx, cy, 2 * r, r / 2, bar_angle + angle * 0.3), fill=colour)


def _x_mark(draw, cx, cy, r, angle, colour):
    for bar_angle in (math.pi / 4, -math.pi / 4):
        draw.polygon(_bar(cx, cy, 2 * r, r / 2.5, bar_angle + angle * 0.3), fill=colour)


def _stripes(draw, cx, cy, r, angle, colour, vertical=False):
    for offset in (-0.8, 0.0, 0.8):
        x, y = (cx + offset * r, cy) if vertical else (cx, cy + offset * r)
        draw.polygon(
            _bar(x, y, 2 * r, r / 3, (math.pi / 2 if vertical else 0.0) + angle * 0.1), fill=colour
        )


def _dots(draw, cx, cy, r, angle, colour):
    dot = r / 4
    for dx in (-0.6, 0.6):
        for dy in (-0.6, 0.6):
            x, y = cx + dx * r, cy + dy * r
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=colour)


SHAPES: dict[str, Drawer] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "plus": _plus,
    "ring": _ring,
    "diamond": _diamond,
    "x_mark": _x_mark,
    "hstripes": lambda *args: _stripes(*args, vertical=False),
    "vstripes": lambda *args: _stripes(*args, vertical=True),
    "dots": _dots,
}

# The demo's target task; the other shapes are left for pretraining a backbone.
DEFAULT_CLASSES = ("circle", "square", "triangle", "plus")
PRETRAINING_CLASSES = tuple(name for name in SHAPES if name not in DEFAULT_CLASSES)
IMAGE_FORMATS = ("png", "jpeg")
SAMPLE_SHARDS = 2


def draw_image(shape: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image of one shape with random colours, placement and noise."""
    background = rng.integers(0, 256, size=3)
    # A foreground far enough from the background that the shape is always visible.
    foreground = (background + rng.integers(96, 160, size=3)) % 256
    canvas = size * _SUPERSAMPLE
    image = Image.new("RGB", (canvas, canvas), tuple(int(c) for c in background))
    radius = canvas * rng.uniform(0.25, 0.38)
    cx, cy = rng.uniform(radius, canvas - radius, size=2)
    SHAPES[shape](
        ImageDraw.Draw(image), cx, cy, radius, rng.uniform(-1, 1), tuple(int(c) for c in foreground)
    )
    pixels = np.asarray(image.resize((size, size), Image.LANCZOS), dtype=np.float32)
    pixels += rng.normal(0.0, 8.0, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format.upper(), quality=90)
    return buffer.getvalue()


def generate_split(
    class_names: Sequence[str],
    split: str,
    per_class: int,
    size: int = 64,
    image_format: str = "png",
    seed: int = 0,
) -> Iterator[LabelledImage]:
    """`per_class` images of every class, classes interleaved, deterministic for a seed."""
    unknown = sorted(set(class_names) - set(SHAPES))
    if unknown:
        raise ValueError(f"Unknown sample classes {unknown}; choose from {sorted(SHAPES)}.")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}.")
    split_code = zlib.crc32(split.encode())  # a stable number per split name
    for index in range(per_class * len(class_names)):
        label = index % len(class_names)
        rng = np.random.default_rng([seed, split_code, index])
        pixels = draw_image(class_names[label], size, rng)
        yield LabelledImage(encode(pixels, image_format), label, f"{split}_{index:06d}")


def sample_splits(
    class_names: Sequence[str] = DEFAULT_CLASSES,
    train_per_class: int = 256,
    eval_per_class: int = 64,
    image_size: int = 64,
    image_format: str = "png",
    seed: int = 0,
) -> dict[str, Iterator[LabelledImage]]:
    """The sample dataset's splits, drawn as they are read."""
    return {
        split: generate_split(class_names, split, per_class, image_size, image_format, seed)
        for split, per_class in (("train", train_per_class), ("eval", eval_per_class))
    }


def write_sample_dataset(
    out_dir: str, num_shards: int = SAMPLE_SHARDS, overwrite: bool = False, **sample
) -> dict[str, int]:
    """Writes the sample dataset (`sample`: sample_splits' settings); returns counts per split."""
    class_names = sample.get("class_names", DEFAULT_CLASSES)
    return write_dataset(
        out_dir, class_names, sample_splits(**sample), num_shards, overwrite=overwrite
    )


def write_sample_span(
    root: str,
    span: int,
    num_shards: int = SAMPLE_SHARDS,
    overwrite: bool = False,
    **sample,
) -> tuple[dict[str, int], list[str]]:
    """New sample images as span `span` of `root`: new data arriving, for demos and tests.

    The seed defaults to the span number, so each span holds different images.
    """
    sample.setdefault("seed", span)
    class_names = sample.get("class_names", DEFAULT_CLASSES)
    return write_span(
        root, span, class_names, sample_splits(**sample), num_shards, overwrite=overwrite
    )
