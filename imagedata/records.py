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
from absl import logging

from imgclf.settings.names import (
    ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABELS_FILENAME,
    SPAN_COMPLETE_MARKER,
    SPAN_FOLDER,
)

GZIP_MAGIC = b"\x1f\x8b"
# Written last into every dataset folder this module writes: the files it wrote, one a line.
# Only a folder with it may be replaced, and only those files.
DATASET_MARKER = ".imgclf-dataset"


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


class UnreadableInputError(ValueError):
    """An input file cannot be read as TFRecords; the message says which and why."""


def read_tfrecord_file(path: str) -> Iterator[bytes]:
    """The serialized records of one TFRecord file, GZIP-compressed if and only if *.gz."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(2)
    if not head:
        logging.warning("Input file %s is empty: it holds no records.", path)
        return
    gzipped, named_gz = head == GZIP_MAGIC, path.endswith(".gz")
    if gzipped and not named_gz:
        raise UnreadableInputError(
            f"{path} is GZIP-compressed but its name does not end in .gz; rename it to "
            f"{os.path.basename(path)}.gz so that it is read as compressed."
        )
    if named_gz and not gzipped:
        raise UnreadableInputError(
            f"{path} is named *.gz but is not GZIP-compressed; remove the .gz from its name."
        )
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP" if gzipped else ""):
            yield record.numpy()
            count += 1
    except tf.errors.OpError as error:
        raise UnreadableInputError(
            f"{path}: record {count} (counting from 0) cannot be read: the file is corrupted "
            f"(bad checksum or cut short) from there on; {count} record(s) before it were "
            f"read. TensorFlow said: {error.message}"
        ) from None
    if count == 0:
        logging.warning("Input file %s holds no records.", path)


def list_files(pattern: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"Input pattern {pattern} matches no file.")
    return files


def read_records(pattern: str) -> Iterator[LabelledImage]:
    """Yields the records of every file matching `pattern`, in file-name order."""
    for path in list_files(pattern):
        for serialized in read_tfrecord_file(path):
            yield from_example(serialized)


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
    whole. A marker file lists what was written: `overwrite` replaces an
    earlier dataset only where such a marker says this function wrote it, and
    only those files; anything else in the folder stays. Returns the number
    of records written per split.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}.")
    ours = _files_we_may_replace(out_dir, splits, num_shards, overwrite)
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
        written = sorted(_entries_under(staging))
        with open(os.path.join(staging, DATASET_MARKER), "w") as f:
            f.writelines(f"{path}\n" for path in written)
        _move_into_place(staging, out_dir, ours)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _files_we_may_replace(
    out_dir: str, splits: Iterable[str], num_shards: int, overwrite: bool
) -> set[str] | None:
    """What an earlier write_dataset left in `out_dir` (None: no such folder), or why not."""
    if not os.path.lexists(out_dir):
        return None
    marker = os.path.join(out_dir, DATASET_MARKER)
    if not os.path.isfile(marker):
        raise FileExistsError(
            f"{out_dir!r} already exists and is not a dataset written by imgclf (it has no "
            f"{DATASET_MARKER} file). Write to a folder that does not exist yet; nothing was "
            "written or deleted."
        )
    if not overwrite:
        raise FileExistsError(
            f"{out_dir!r} holds a dataset written earlier; pass --overwrite to replace the files "
            f"that its {DATASET_MARKER} lists (other files there are kept)."
        )
    with open(marker) as f:
        ours = {line.rstrip("\n") for line in f if line.strip()}
    shards = [shard_name(i, num_shards) for i in range(num_shards)]
    new = {LABELS_FILENAME} | {os.path.join(split, shard) for split in splits for shard in shards}
    in_the_way = sorted((_entries_under(out_dir) - ours - {DATASET_MARKER}) & new)
    if in_the_way:
        raise FileExistsError(
            f"{out_dir!r}: {', '.join(in_the_way)} would be replaced but the earlier dataset "
            "did not write it; move it away first. Nothing was written or deleted."
        )
    return ours


def _move_into_place(staging: str, out_dir: str, ours: set[str] | None) -> None:
    """Renames `staging` to `out_dir`; an earlier dataset there keeps the files not its own.

    The earlier folder is renamed aside whole, so readers see the old dataset
    or the new one, never a mix. Should this stop half-way, the files that
    were not ours are still in that `.replaced-` folder beside `out_dir`.
    """
    if ours is None:
        os.replace(staging, out_dir)
        return
    replaced = f"{staging}.replaced"
    os.replace(out_dir, replaced)
    os.replace(staging, out_dir)
    for path in sorted(_entries_under(replaced) - ours - {DATASET_MARKER}):
        target = os.path.join(out_dir, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(os.path.join(replaced, path), target)
    shutil.rmtree(replaced)


def _entries_under(folder: str) -> set[str]:
    """Relative paths of the files, links and empty folders under `folder`."""
    entries = set()
    for parent, folders, files in os.walk(folder):
        relative = os.path.relpath(parent, folder)
        leaves = files + [name for name in folders if os.path.islink(os.path.join(parent, name))]
        if not folders and not files and relative != ".":
            entries.add(relative)
        entries.update(os.path.normpath(os.path.join(relative, name)) for name in leaves)
    return entries


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
    """Writes `<root>/span-<span>/` and updates `<root>/labels.txt`; then, last, the span's
    completeness marker (`_SUCCESS`), so that no run takes the span before it is whole.

    Returns the records written per split and the classes this span added.
    """
    if span < 0:
        raise ValueError(f"A span number is 0 or more, got {span}.")
    known = known_classes(root)
    merged = merge_classes(known, class_names)
    marker = os.path.join(span_dir(root, span), SPAN_COMPLETE_MARKER)
    if overwrite and os.path.exists(marker):
        os.remove(marker)  # the span is being rewritten: incomplete until the end
    counts = write_dataset(span_dir(root, span), class_names, splits, num_shards, overwrite)
    if merged != known:
        partial = os.path.join(root, f".{LABELS_FILENAME}.partial")
        with open(partial, "w") as f:
            f.writelines(f"{name}\n" for name in merged)
        os.replace(partial, os.path.join(root, LABELS_FILENAME))
    with open(marker, "w"):
        pass
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
