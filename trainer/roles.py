"""Which records train and which validate, as inputs ready for the schedule.

The eval split is the test: only the Evaluator and the model report read it.
The pipeline gives the Trainer (and the Tuner) the validation split as their
eval files when the data has one, else the train split again, of which a
stable-hash part is then held out (trainer/data.py:Part).
"""

from __future__ import annotations

from dataclasses import dataclass

from absl import logging
from tfx import v1 as tfx

from imgclf.settings.config import TrainerConfig
from imgclf.settings.names import EVAL_SPLIT, TRAIN_SPLIT, VALIDATION_SPLIT
from imgclf.trainer.data import Input, Part, eval_input, label_counts, train_input


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
    train = train_input(
        roles.train_files, data, image_size, global_batch_size, config.training, roles.train_part
    )
    validation = eval_input(
        roles.validation_files, data, image_size, global_batch_size, roles.validation_part
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
