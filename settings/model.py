"""The model section: the pretrained base and the head."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from imgclf.settings.architectures import ARCHITECTURES
from imgclf.settings.base import (
    BUNDLED_CONFIGS,
    Section,
    absolute_path,
)

# `model.weights: bundled:<file>` names a base in BUNDLED_CONFIGS/backbones.
BUNDLED_WEIGHTS_PREFIX = "bundled:"


def _bundled_weights(name: str) -> str:
    backbones = BUNDLED_CONFIGS / "backbones"
    path = backbones / name
    if name != path.name or not path.is_file():
        shipped = sorted(file.name for file in backbones.glob("*.h5"))
        raise ValueError(
            f"no base {name!r} is bundled with imgclf; bundled: {', '.join(shipped) or 'none'}"
        )
    return str(path)


class ModelConfig(Section):
    """The network: a pretrained base and a small classification head."""

    base_model: str = "EfficientNetV2B0"
    weights: str = Field(
        "imagenet",
        description="'imagenet', 'none', a weights file path (local or gs://...), or "
        f"'{BUNDLED_WEIGHTS_PREFIX}<file>' for a base shipped in imgclf's configs/backbones/.",
    )
    image_size: int = Field(224, ge=32, le=1024)
    alpha: float = Field(1.0, gt=0.0, description="Width multiplier; MobileNetV2 only.")
    feature_layer: str = Field(
        "",
        description="Take features from this layer of the base (e.g. InceptionV3 'mixed7'), "
        "flattened, instead of pooling its top.",
    )
    head_units: int = Field(0, ge=0, description="Units of a hidden dense layer; 0 for none.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    binary: bool = Field(False, description="One sigmoid unit instead of softmax (2 classes).")

    @field_validator("base_model")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown base model {name!r}; choose from {sorted(ARCHITECTURES)}")
        return name

    @field_validator("weights")
    @classmethod
    def _weights_file_absolute(cls, weights: str) -> str:
        if weights in ("imagenet", "none"):
            return weights
        if weights.startswith(BUNDLED_WEIGHTS_PREFIX):
            return _bundled_weights(weights.removeprefix(BUNDLED_WEIGHTS_PREFIX))
        return absolute_path(weights)

    @model_validator(mode="after")
    def _fits_base(self) -> ModelConfig:
        architecture = ARCHITECTURES[self.base_model]
        if self.image_size < architecture.min_image_size:
            raise ValueError(f"{self.base_model} needs image_size >= {architecture.min_image_size}")
        if self.alpha != 1.0 and not architecture.has_width_multiplier:
            raise ValueError(f"alpha (width multiplier) is not a setting of {self.base_model}")
        return self
