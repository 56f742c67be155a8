"""Data in spans: each delivery of labelled images is a folder, `<root>/span-<N>/<split>/`.

The input patterns name the span with TFX's `{SPAN}` placeholder (and, if
spans are rewritten, `{VERSION}`), e.g. `span-{SPAN}/train/*`. ExampleGen's
driver reads the newest span, or the one the configuration names. This module
finds spans with TFX's own matching code, so that the commands, the SpanResolver
and ExampleGen always agree on which span is which.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass

import tensorflow as tf
from absl import logging
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2, range_config_pb2

from imgclf.settings.data import DataConfig, span_folder_pattern
from imgclf.settings.names import EVAL_SPLIT, SPAN_SPEC, TRAIN_SPLIT, VALIDATION_SPLIT


@dataclass(frozen=True)
class Span:
    number: int
    version: int | None
    fingerprint: str


class NoSpanError(FileNotFoundError):
    """No files match the patterns for the span asked for; the message names the patterns."""


def input_splits(data: DataConfig) -> list[example_gen_pb2.Input.Split]:
    patterns = {TRAIN_SPLIT: data.train_pattern, EVAL_SPLIT: data.eval_pattern}
    if data.validation_pattern:
        patterns[VALIDATION_SPLIT] = data.validation_pattern
    return [
        example_gen_pb2.Input.Split(name=name, pattern=pattern)
        for name, pattern in patterns.items()
    ]


def static_range(span: int) -> range_config_pb2.RangeConfig:
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )


def find_span(
    input_base: str,
    splits: list[example_gen_pb2.Input.Split],
    span: int | None = None,
    marker: str = "",
) -> Span:
    """The span ExampleGen reads: `span`, or the newest when None (0 without {SPAN}); with a
    `marker`, the newest whose folder holds it (see `newest_complete_span`).

    Every split must match files: TFX would fingerprint no files as span 0.
    """
    if not tf.io.gfile.isdir(input_base):
        raise NoSpanError(f"The data root {input_base} does not exist (setting data.root).")
    folder = span_folder_pattern(splits[0].pattern)
    if span is None and marker and folder:
        span = newest_complete_span(input_base, folder, marker)
    range_config = static_range(span) if span is not None else None
    try:
        # Copies: TFX fills the span into the patterns it is given.
        fingerprint, number, version = utils.calculate_splits_fingerprint_span_and_version(
            input_base, [copy.deepcopy(split) for split in splits], range_config
        )
    except ValueError as error:
        wanted = f"span {span}" if span is not None else "any span"
        patterns = ", ".join(os.path.join(input_base, split.pattern) for split in splits)
        raise NoSpanError(f"No files for {wanted} match {patterns}: {error}") from None
    found = Span(number, version, fingerprint)
    for split in splits:
        pattern = os.path.join(input_base, fill_span(split.pattern, found))
        if not tf.io.gfile.glob(pattern):
            raise NoSpanError(f"No files match {pattern}, the {split.name} split's pattern.")
    return found


def newest_complete_span(input_base: str, folder: str, marker: str) -> int:
    """The newest span whose folder (`folder`, 'span-{SPAN}' under `input_base`) holds
    `marker`; newer ones without it, still arriving, are skipped with a warning."""
    spans = span_folders(input_base, folder)
    complete = [number for number, path in spans.items() if tf.io.gfile.exists(f"{path}/{marker}")]
    for number in sorted(spans):
        if number > max(complete, default=-1):
            logging.warning(
                "Span %d (%s) has no %s yet: still arriving? Skipped.",
                number,
                spans[number],
                marker,
            )
    if not complete:
        raise NoSpanError(
            f"No span under {input_base} is complete: none of the folders matching {folder} "
            f"holds {marker}, which a span's writer puts there last (imgclf's writers do). "
            "Add it to each span delivered whole, or set data.span_complete_marker to '' to take "
            "spans without it."
        )
    return max(complete)


def span_folders(input_base: str, folder: str) -> dict[int, str]:
    """Span number -> folder, for each folder matching `folder` ('span-{SPAN}') under
    `input_base` (a {VERSION} in it matches any version)."""
    wildcard = folder.replace(SPAN_SPEC, "*").replace(utils.VERSION_SPEC, "*")
    regex = re.escape(folder).replace(re.escape(SPAN_SPEC), r"(\d+)")
    regex = regex.replace(re.escape(utils.VERSION_SPEC), r"\d+")
    found = {}
    for path in tf.io.gfile.glob(os.path.join(input_base, wildcard)):
        relative = os.path.relpath(path, input_base)
        if matched := re.fullmatch(regex, relative):
            found[int(matched[1])] = path
    return found


def window(
    input_base: str,
    splits: list[example_gen_pb2.Input.Split],
    newest: int,
    size: int,
    marker: str = "",
) -> list[Span]:
    """The spans of a rolling window ending at `newest`, oldest first; absent ones skipped,
    and with a `marker`, incomplete ones."""
    folder = span_folder_pattern(splits[0].pattern)
    complete = span_folders(input_base, folder) if marker and folder else None
    found = []
    for number in range(max(0, newest - size + 1), newest + 1):
        if complete is not None and (
            number not in complete or not tf.io.gfile.exists(f"{complete[number]}/{marker}")
        ):
            continue
        try:
            found.append(find_span(input_base, splits, number))
        except NoSpanError:
            continue
    return found


def newest_span(data: DataConfig) -> Span:
    """The span a run of this configuration ingests (its newest, if it reads a window)."""
    return find_span(data.root, input_splits(data), data.span, data.span_complete_marker)


def fill_span(pattern: str, span: Span) -> str:
    """`pattern` with the span's number (and version, if it has {VERSION}) filled in."""
    return utils.get_pattern_for_span_version(
        pattern,
        is_match_span=SPAN_SPEC in pattern,
        is_match_date=False,
        is_match_version=utils.VERSION_SPEC in pattern,
        span=span.number,
        version=span.version,
    )


def span_pattern(data: DataConfig, pattern: str, span: Span) -> str:
    """`pattern` (relative to the data root) of the span, as a path under the root."""
    return os.path.join(data.root, fill_span(pattern, span))
