"""The record format: tf.Example with encoded image bytes, an integer label and an id.

This is the format TFX's own image examples use (`image`: JPEG/PNG bytes,
`label`: int64), so data prepared elsewhere for TFX runs here unchanged.
Splits live in sub-folders (`train/`, `eval/`) of sharded TFRecord files,
beside a labels file that names the classes in label order.

Data that keeps arriving is written in spans, `<root>/span-<N>/<split>/`, one
labels file at the root for all of them: a class keeps its label in every
span, and a span may add classes after the known ones.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import tensorflow as tf

from imgclf.settings.names import ID_KEY, IMAGE_KEY, LABEL_KEY, LABELS_FILENAME, SPAN_FOLDER


@dataclass(frozen=True)
class LabelledImage:
    """One record: the encoded image file as it was, its class index and an id."""

    image: bytes
    label: int
    id: str


def to_example(record: LabelledImage) -> tf.train.Example:
    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_KEY: bytes_feature(record.image),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[record.label])),
                ID_KEY: bytes_feature(record.id.encode()),
            }
        )
    )


def from_example(serialized: bytes) -> LabelledImage:
    features = tf.train.Example.FromString(serialized).features.feature
    return LabelledImage(
        image=features[IMAGE_KEY].bytes_list.value[0],
        label=int(features[LABEL_KEY].int64_list.value[0]),
        id=features[ID_KEY].bytes_list.value[0].decode(),
    )


def read_records(pattern: str, compression: str = "") -> Iterator[LabelledImage]:
    """Yields the records of every file matching `pattern`, in file-name order."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No TFRecord file matches {pattern!r}.")
    for serialized in tf.data.TFRecordDataset(files, compression_type=compression):
        yield from_example(serialized.numpy())


def read_labels(path: str) -> list[str]:
    """Class names, one a line, in label order."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"Labels file {path!r} does not exist: it must list the class names, one a line, "
            "in label order (label 0 first)."
        )
    with tf.io.gfile.GFile(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) < 2:
        raise ValueError(f"Labels file {path!r} names {len(names)} class(es); at least 2 needed.")
    if len(set(names)) != len(names):
        raise ValueError(f"Labels file {path!r} names a class twice: {names}.")
    return names


def shard_name(index: int, num_shards: int) -> str:
    return f"data-{index:05d}-of-{num_shards:05d}.tfrecord"


def write_dataset(
    out_dir: str,
    class_names: Sequence[str],
    splits: dict[str, Iterable[LabelledImage]],
    num_shards: int,
    overwrite: bool = False,
) -> dict[str, int]:
    """Writes `<out_dir>/<split>/data-*.tfrecord` and `<out_dir>/labels.txt`.

    Everything is written to a temporary sibling folder that is renamed into
    place only when complete, so a failure never leaves a dataset that looks
    whole. Returns the number of records written per split.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}.")
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir!r} already exists; pass overwrite to replace it.")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(out_dir)}.partial-{uuid.uuid4().hex[:8]}")
    try:
        counts = {
            split: _write_split(os.path.join(staging, split), records, num_shards)
            for split, records in splits.items()
        }
        with open(os.path.join(staging, LABELS_FILENAME), "w") as f:
            f.writelines(f"{name}\n" for name in class_names)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def span_dir(root: str, span: int) -> str:
    return os.path.join(root, SPAN_FOLDER.format(span=span))


def known_classes(root: str) -> list[str]:
    """The class names of the spans under `root` so far; none before the first span."""
    path = os.path.join(root, LABELS_FILENAME)
    return read_labels(path) if os.path.exists(path) else []


def merge_classes(known: Sequence[str], new: Sequence[str]) -> list[str]:
    """The labels file after a span with `new` classes: each class keeps its label."""
    shorter, longer = sorted((list(known), list(new)), key=len)
    if longer[: len(shorter)] != shorter:
        raise ValueError(
            f"A span's classes must keep the labels of the classes before it, in order "
            f"({', '.join(known)}), and may only add classes after them; got {', '.join(new)}."
        )
    return longer


def new_classes_note(added: Sequence[str]) -> str:
    return (
        f"New classes in this span: {', '.join(added)}, added to the labels file. Update the "
        "curated schema (imgclf make-schema), whose label range they extend."
    )


def write_span(
    root: str,
    span: int,
    class_names: Sequence[str],
    splits: dict[str, Iterable[LabelledImage]],
    num_shards: int,
    overwrite: bool = False,
) -> tuple[dict[str, int], list[str]]:
    """Writes `<root>/span-<span>/` and updates `<root>/labels.txt`.

    Returns the records written per split and the classes this span added.
    """
    if span < 0:
        raise ValueError(f"A span number is 0 or more, got {span}.")
    known = known_classes(root)
    merged = merge_classes(known, class_names)
    counts = write_dataset(span_dir(root, span), class_names, splits, num_shards, overwrite)
    if merged != known:
        partial = os.path.join(root, f".{LABELS_FILENAME}.partial")
        with open(partial, "w") as f:
            f.writelines(f"{name}\n" for name in merged)
        os.replace(partial, os.path.join(root, LABELS_FILENAME))
    return counts, merged[len(known) :] if known else []


def _write_split(split_dir: str, records: Iterable[LabelledImage], num_shards: int) -> int:
    os.makedirs(split_dir)
    writers = [
        tf.io.TFRecordWriter(os.path.join(split_dir, shard_name(i, num_shards)))
        for i in range(num_shards)
    ]
    count = 0
    try:
        for count, record in enumerate(records, start=1):
            writers[(count - 1) % num_shards].write(to_example(record).SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return count
