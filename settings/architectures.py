"""The base networks the Trainer offers, and the input scaling each one expects.

Kept free of TensorFlow imports so that the configuration can validate a
model name without loading Keras.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """A `keras.applications` constructor name and how it wants its pixels.

    Models take float pixels in [0, 255]. EfficientNet and EfficientNetV2
    rescale inside the network; the others were trained on pixels scaled to
    [-1, 1] (their `preprocess_input`), which `scale` and `offset` reproduce.
    """

    name: str
    min_image_size: int
    scale: float | None = None
    offset: float = 0.0
    has_width_multiplier: bool = False


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("EfficientNetV2B0", min_image_size=32),
        Architecture("EfficientNetB0", min_image_size=32),
        Architecture(
            "MobileNetV2",
            min_image_size=32,
            scale=1 / 127.5,
            offset=-1.0,
            has_width_multiplier=True,
        ),
        Architecture("ResNet50V2", min_image_size=32, scale=1 / 127.5, offset=-1.0),
        Architecture("InceptionV3", min_image_size=75, scale=1 / 127.5, offset=-1.0),
    )
}
