"""The training and tuning sections: the two-phase schedule, and the search before it."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from imgclf.settings.base import (
    Section,
)

# At equal validation accuracy, the least fall in validation loss that early stopping counts
# as progress: once accuracy saturates (1.0 on a small share), the loss keeps creeping down
# (0.0005, 0.0004, ...) and would otherwise keep every epoch a phase is allowed.
MIN_LOSS_GAIN = 1e-3


class TrainingConfig(Section):
    """The two-phase schedule: feature extraction, then fine-tuning."""

    batch_size: int = Field(32, ge=1, description="Per replica; global = this x replicas.")
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    phase1_epochs: int = Field(5, ge=1)
    phase1_learning_rate: float = Field(1e-3, gt=0.0)
    # Epochs are maxima (early_stopping_patience): fine-tuning gets room to adapt the whole
    # base to data unlike its source task, and ends soon after its best epoch on data like it.
    phase2_epochs: int = Field(30, ge=0, description="0 switches fine-tuning off.")
    phase2_learning_rate: float | None = Field(
        None,
        gt=0.0,
        description="The peak of fine-tuning's schedule. Default: phase1_learning_rate.",
    )
    phase2_schedule: Literal["cosine", "constant"] = Field(
        "cosine",
        description="Fine-tuning's learning rate: 'cosine' warms up linearly to "
        "phase2_learning_rate, then decays it along a cosine to 0 at phase2_epochs.",
    )
    warmup_epochs: int = Field(1, ge=0, description="Fine-tuning's warm-up, with 'cosine'.")
    early_stopping_patience: int = Field(
        5,
        ge=0,
        description="End a phase after this many epochs without progress in validation "
        f"(more accuracy, or as much with a loss at least {MIN_LOSS_GAIN} lower; its best epoch "
        "is kept either way); 0 trains every epoch. Epochs are maxima.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the train split held out for validation, chosen by a stable hash "
        "of each image, when the data has no validation split (data.validation_pattern).",
    )
    min_validation_images: int = Field(
        100,
        ge=0,
        description="A validation share carved out of train that holds fewer images is widened "
        "(up to 25% of the train split), and the Trainer says so: a few dozen images cannot "
        "tell a better epoch from a luckier one. 0: never widen.",
    )
    class_weight: Literal["balanced", "none"] = Field(
        "none",
        description="'balanced' weighs each class's loss by total / (classes x its train count).",
    )
    fine_tune_layers: int | Literal["all"] = Field(
        "all", description="Top layers of the base to unfreeze, or 'all'."
    )
    fine_tune_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="Unfreeze this fraction of the base's layers instead."
    )
    compare_scratch: bool = Field(
        False,
        description="Also train the same network from random weights for as many epochs as "
        "the transfer model trained, report both validation accuracies (what transfer is "
        "worth), and export the better of the two.",
    )
    fine_tune_batch_norm: bool = Field(
        True,
        description="Fine-tuning also trains the unfrozen BatchNormalization layers, statistics "
        "included (for data far from the base's source task); off, they stay as pretrained.",
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="Default: the train split's size / global batch, rounded up."
    )
    mixed_precision: bool = Field(False, description="mixed_float16 on GPUs; ignored on CPU.")
    cpu_replicas: int = Field(
        1, ge=1, description="With no GPU, split the CPU into this many MirroredStrategy replicas."
    )
    shuffle_buffer: int = Field(1024, ge=1)
    random_flip: bool = True
    random_rotation: float = Field(0.05, ge=0.0, le=0.5, description="Fraction of a full turn.")
    random_zoom: float = Field(0.1, ge=0.0, lt=1.0)
    random_contrast: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 42
    cache_features: bool | None = Field(
        None,
        description="Train phase 1's head on features the frozen base computes once. "
        "Default: on when augmentation is off.",
    )
    cached_views: int = Field(
        1, ge=1, description="With augmentation on and cache_features: views of each image cached."
    )
    feature_cache_memory_mb: int = Field(
        1024, ge=0, description="A split's cached features beyond this go to TFRecord files."
    )
    warm_start: bool | None = Field(
        None,
        description="Start from the latest blessed model of an earlier span, when it has the "
        "same classes. Default: on for scheduled runs (imgclf retrain, Kubeflow recurring runs).",
    )

    @property
    def augments(self) -> bool:
        return bool(
            self.random_flip or self.random_rotation or self.random_zoom or self.random_contrast
        )

    @property
    def uses_feature_cache(self) -> bool:
        return self.cache_features if self.cache_features is not None else not self.augments

    @property
    def fine_tune_learning_rate(self) -> float:
        return self.phase2_learning_rate or self.phase1_learning_rate

    @field_validator("fine_tune_layers")
    @classmethod
    def _some_layers(cls, layers: int | str) -> int | str:
        if layers != "all" and layers < 1:
            raise ValueError("unfreeze at least 1 layer, or 'all'")
        return layers

    def layers_to_unfreeze(self, base_layers: int) -> int:
        if self.fine_tune_fraction is not None:
            return max(1, round(self.fine_tune_fraction * base_layers))
        return base_layers if self.fine_tune_layers == "all" else self.fine_tune_layers


# What the Tuner searches, by the section of the setting each value overrides.
TUNED_SETTINGS = {
    "training": ("phase1_learning_rate", "phase2_learning_rate", "fine_tune_fraction"),
    "model": ("dropout",),
}


class TuningConfig(Section):
    """An optional search before training: TFX's Tuner with KerasTuner (trainer/tuning.py).

    Each trial is a whole two-phase run, judged on the validation records;
    the Trainer then trains with the best values and records them.
    """

    enabled: bool = False
    max_trials: int = Field(6, ge=1, description="Random search: this many settings tried.")
    phase1_learning_rates: list[float] = Field(default_factory=lambda: [1e-3, 3e-3])
    phase2_learning_rates: list[float] = Field(default_factory=lambda: [1e-4, 3e-4, 1e-3])
    fine_tune_fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0])
    dropouts: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.4])

    @field_validator("phase1_learning_rates", "phase2_learning_rates", "fine_tune_fractions")
    @classmethod
    def _positive_choices(cls, values: list[float], info) -> list[float]:
        if not values or any(value <= 0 for value in values):
            raise ValueError(f"{info.field_name}: give at least one value, each above 0")
        if info.field_name == "fine_tune_fractions" and any(value > 1 for value in values):
            raise ValueError("fine_tune_fractions are shares of the base's layers: at most 1")
        return values

    @field_validator("dropouts")
    @classmethod
    def _dropout_choices(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 <= value < 1 for value in values):
            raise ValueError("give at least one dropout, each in [0, 1)")
        return values
