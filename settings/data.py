"""The data section: where the labelled images are and how their records are laid out."""

from __future__ import annotations

import os

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from imgclf.settings.base import (
    Section,
    absolute_path,
    is_remote,
)
from imgclf.settings.names import (
    IMAGE_KEY,
    LABEL_KEY,
    LABELS_FILENAME,
    SCHEMA_FILENAME,
    SPAN_COMPLETE_MARKER,
    SPAN_SPEC,
)


def span_folder_pattern(pattern: str) -> str | None:
    """The pattern's folders up to the one named with {SPAN} ('span-{SPAN}'), or None when
    {SPAN} is only in a file name."""
    parts = pattern.split("/")
    named = [index for index, part in enumerate(parts[:-1]) if SPAN_SPEC in part]
    return "/".join(parts[: named[0] + 1]) if named else None


class DataConfig(Section):
    """Where the labelled images are and how their records are laid out."""

    root: str = "data/sample"
    train_pattern: str = "train/*"
    eval_pattern: str = Field(
        "eval/*", description="The test split: the Evaluator's, never seen in training."
    )
    validation_pattern: str | None = Field(
        None,
        description="A validation split of its own (checkpoints, early stopping); "
        "default: carved out of train (training.validation_fraction).",
    )
    labels_file: str = Field(
        LABELS_FILENAME, description="Class names in label order; relative to root unless a path."
    )
    image_key: str = IMAGE_KEY
    label_key: str = LABEL_KEY
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="The largest image (width x height) read anywhere: conversion, validation, "
        "training and the serving signature check the header and refuse a larger image before "
        "decoding it. 50 million takes a 48-megapixel phone photo (150 MB decoded).",
    )
    schema_file: str = Field(
        SCHEMA_FILENAME, description="The curated schema (imgclf make-schema); relative to root."
    )
    span: int | None = Field(
        None, ge=0, description="Ingest this span (a backfill) instead of the newest one."
    )
    rolling_spans: int = Field(
        1, ge=1, description="Train and evaluate on the newest N spans, up to `span` if set."
    )
    span_complete_marker: str = Field(
        SPAN_COMPLETE_MARKER,
        description="A span is taken only once its folder (the one the patterns name with "
        "{SPAN}) holds this file, which its writer puts there last; imgclf's writers do. "
        "Empty: every span that matches the patterns is taken.",
    )

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, root: str) -> str:
        return absolute_path(root)

    @model_validator(mode="after")
    def _spans_in_patterns(self) -> DataConfig:
        patterns = [self.train_pattern, self.eval_pattern, self.validation_pattern]
        marked = [SPAN_SPEC in pattern for pattern in patterns if pattern is not None]
        if any(marked) and not all(marked):
            given = ", ".join(repr(pattern) for pattern in patterns if pattern is not None)
            raise ValueError(
                f"train_pattern, eval_pattern and validation_pattern must all hold {SPAN_SPEC} "
                f"or none (got {given})"
            )
        if (
            self.has_spans
            and self.span_complete_marker
            and not span_folder_pattern(self.train_pattern)
        ):
            raise ValueError(
                f"span_complete_marker: {SPAN_SPEC} must name a folder of the patterns (e.g. "
                f"'span-{SPAN_SPEC}/train/*'), where the marker is looked for; or set it to '' "
                "to take spans without a marker"
            )
        if not self.has_spans and (self.span is not None or self.rolling_spans > 1):
            raise ValueError(
                f"span and rolling_spans need {SPAN_SPEC} in the patterns, "
                f"e.g. 'span-{SPAN_SPEC}/train/*'"
            )
        return self

    @property
    def has_spans(self) -> bool:
        return SPAN_SPEC in self.train_pattern

    @property
    def labels_path(self) -> str:
        return self._under_root(self.labels_file)

    @property
    def schema_path(self) -> str:
        return self._under_root(self.schema_file)

    def _under_root(self, path: str) -> str:
        if is_remote(path) or os.path.isabs(path):
            return path
        return os.path.join(self.root, path)
