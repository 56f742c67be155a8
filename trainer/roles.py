"""Which records train and which validate, as inputs ready for the schedule.

The eval split is the test: only the Evaluator and the model report read it.
The pipeline gives the Trainer (and the Tuner) the validation split as their
eval files when the data has one, else the train split again, of which a
stable-hash part is then held out (trainer/data.py:Part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from absl import logging
from tfx import v1 as tfx

from imgclf.settings.config import TrainerConfig
from imgclf.settings.names import EVAL_SPLIT, TRAIN_SPLIT, VALIDATION_SPLIT
from imgclf.trainer.data import (
    Input,
    Part,
    count_examples,
    eval_input,
    label_counts,
    train_input,
)


@dataclass(frozen=True)
class Roles:
    """The files and parts of them that train and validate."""

    train_files: list[str]
    validation_files: list[str]
    train_part: Part | None = None
    validation_part: Part | None = None

    def describe(self) -> dict[str, str]:
        return {
            "train": _described(TRAIN_SPLIT, self.train_part),
            "validation": _described(
                TRAIN_SPLIT if self.validation_part else VALIDATION_SPLIT, self.validation_part
            ),
            "test": f"the {EVAL_SPLIT} split (the Evaluator's; never read by the Trainer)",
        }


def _described(split: str, part: Part | None) -> str:
    return f"the {split} split" + (f", {part.describe()}" if part else "")


def data_roles(fn_args: tfx.components.FnArgs, config: TrainerConfig) -> Roles:
    if config.data.validation_pattern:
        return Roles(fn_args.train_files, fn_args.eval_files)
    fraction, image_key = config.training.validation_fraction, config.data.image_key
    return Roles(
        fn_args.train_files,
        fn_args.train_files,
        train_part=Part(fraction, image_key, validation=False),
        validation_part=Part(fraction, image_key, validation=True),
    )


# A widened validation share leaves at least this much of the train split to train on.
MAX_WIDENED_FRACTION = 0.25


def widened(roles: Roles, validation_images: int, config: TrainerConfig) -> Roles:
    """The roles with a validation share wide enough to choose epochs by, if it was not.

    A validation share carved out of train that holds fewer than
    training.min_validation_images images is widened towards that many, up to
    MAX_WIDENED_FRACTION of the train split; the images it adds are those
    nearest to the old boundary by hash, so the old share stays inside the new.
    """
    part, wanted = roles.validation_part, config.training.min_validation_images
    if part is None or validation_images >= wanted:
        return roles
    total = count_examples(roles.train_files)
    fraction = min(MAX_WIDENED_FRACTION, math.ceil(100 * wanted / max(total, 1)) / 100)
    if fraction <= part.validation_fraction:
        return roles
    logging.warning(
        "%d validation images (%.0f%% of the train split's %d) are too few to choose epochs "
        "by: validating on %.0f%% of it instead (training.min_validation_images: %d).",
        validation_images,
        100 * part.validation_fraction,
        total,
        100 * fraction,
        wanted,
    )
    wider = {"validation_fraction": fraction, "widened_from": part.validation_fraction}
    return replace(
        roles,
        train_part=replace(roles.train_part, **wider),
        validation_part=replace(part, **wider),
    )


def balanced_class_weight(counts: list[int]) -> dict[int, float]:
    """total / (classes x count): every class weighs as much in the loss as the others."""
    total, present = sum(counts), [count for count in counts if count]
    return {label: total / (len(present) * count) for label, count in enumerate(counts) if count}


@dataclass
class TrainingData:
    roles: Roles
    train: Input
    validation: Input
    class_counts: list[int]  # in the train records, by label
    class_weight: dict[int, float] | None


def training_data(
    fn_args: tfx.components.FnArgs, config: TrainerConfig, global_batch_size: int, num_classes: int
) -> TrainingData:
    roles = data_roles(fn_args, config)
    data, image_size = config.data, config.model.image_size

    def validation_of(roles: Roles) -> Input:
        return eval_input(
            roles.validation_files, data, image_size, global_batch_size, roles.validation_part
        )

    validation = validation_of(roles)
    wider = widened(roles, validation.examples, config)
    if wider is not roles:
        roles, validation = wider, validation_of(wider)
    train = train_input(
        roles.train_files, data, image_size, global_batch_size, config.training, roles.train_part
    )
    logging.info(
        "%d train and %d validation examples; %d steps per epoch of %d images.",
        train.examples,
        validation.examples,
        train.steps,
        global_batch_size,
    )
    counts = label_counts(roles.train_files, data.label_key, num_classes, roles.train_part)
    balanced = config.training.class_weight == "balanced"
    return TrainingData(
        roles, train, validation, counts, balanced_class_weight(counts) if balanced else None
    )
