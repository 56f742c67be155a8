"""Converts the common folder layout into the project's sharded TFRecords.

    <root>/<split>/<class name>/*.jpg|*.jpeg|*.png|*.gif|*.bmp

is the layout `image_dataset_from_directory` reads. Class names are the class
folders of all splits, sorted, as Keras orders them. Every file is decoded
before anything is written: files that do not decode are listed by path, and
nothing is written unless the caller chose to leave them out. A photo whose
EXIF orientation says it is stored turned is written upright
(imagedata/orientation.py), and counted. The output
folder may not be, hold or lie inside the source folder, whatever the flags.
"""

from __future__ import annotations

import os
import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from imgclf.imagedata.decode import DECODER_NOISE, why_undecodable
from imgclf.imagedata.native_stderr import native_stderr_without
from imgclf.imagedata.orientation import upright
from imgclf.imagedata.records import (
    LabelledImage,
    known_classes,
    new_classes_note,
    write_dataset,
    write_span,
)
from imgclf.settings.data import DataConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


class UnreadableImagesError(ValueError):
    def __init__(self, unreadable: dict[str, str]):
        self.paths = list(unreadable)
        listing = "\n  ".join(f"{path}: {why}" for path, why in unreadable.items())
        super().__init__(
            f"{len(self.paths)} image file(s) could not be decoded; nothing was written. "
            "Fix or remove them, or pass --skip-unreadable (skip_unreadable=True) to leave "
            f"them out:\n  {listing}"
        )


@dataclass
class ConversionReport:
    class_names: list[str]
    written: dict[str, int]
    unreadable: dict[str, str] = field(default_factory=dict)  # path: why
    ignored: list[str] = field(default_factory=list)
    added_classes: list[str] = field(default_factory=list)  # new in this span
    turned: list[str] = field(default_factory=list)  # written upright, by EXIF orientation

    def summary(self) -> str:
        lines = [f"Classes ({len(self.class_names)}): {', '.join(self.class_names)}"]
        if self.added_classes:
            lines.append(new_classes_note(self.added_classes))
        lines += [f"{split}: {count} images written" for split, count in self.written.items()]
        if self.turned:
            lines.append(
                f"Turned upright by their EXIF orientation: {len(self.turned)} photo(s), "
                f"e.g. {self.turned[0]}"
            )
        if self.unreadable:
            lines.append(f"Left out {len(self.unreadable)} unreadable image(s):")
            lines += [f"  {path}: {why}" for path, why in self.unreadable.items()]
        if self.ignored:
            lines.append(f"Ignored {len(self.ignored)} file(s) that are not images by extension:")
            lines += [f"  {path}" for path in self.ignored]
        return "\n".join(lines)


def convert_folder(
    root: str,
    out_dir: str,
    splits: Sequence[str] = ("train", "eval"),
    num_shards: int = 1,
    skip_unreadable: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    span: int | None = None,
    max_image_pixels: int = DataConfig.model_fields["max_image_pixels"].default,
) -> ConversionReport:
    """Writes `out_dir`, or with `span`, span `span` of the spans under `out_dir`.

    A span's classes keep the labels of `out_dir`'s labels file; classes seen
    for the first time follow them, sorted. An image of more than
    `max_image_pixels` pixels is unreadable: refused from its header, never decoded.
    """
    _refuse_output_overlapping_source(root, out_dir)
    for split in splits:
        if not os.path.isdir(os.path.join(root, split)):
            raise FileNotFoundError(f"Split folder {os.path.join(root, split)!r} does not exist.")
    found = {name for split in splits for name in _class_folders(os.path.join(root, split))}
    _refuse_unclear_class_names(found, [os.path.join(root, split) for split in splits])
    known = known_classes(out_dir) if span is not None else []
    class_names = known + sorted(found - set(known))
    if len(class_names) < 2:
        raise ValueError(f"Found {len(class_names)} class folder(s) under {root!r}; need 2+.")

    entries: dict[str, list[tuple[str, int]]] = {split: [] for split in splits}
    unreadable: dict[str, str] = {}
    ignored: list[str] = []
    with native_stderr_without(DECODER_NOISE):  # each bad file is listed with its reason
        for split in splits:
            for label, name in enumerate(class_names):
                for path in _files(os.path.join(root, split, name)):
                    if os.path.isdir(path):
                        # Its images would belong to no class: refused rather than left out.
                        raise ValueError(
                            f"{path} is a folder inside a class folder; a class folder holds "
                            "image files only."
                        )
                    if not path.lower().endswith(IMAGE_EXTENSIONS):
                        ignored.append(path)
                    elif why := _why_unreadable(path, max_image_pixels):
                        unreadable[path] = why
                    else:
                        entries[split].append((path, label))
            # Mix the classes, so that a reader's shuffle buffer need not span the whole split.
            random.Random(seed).shuffle(entries[split])
    if unreadable and not skip_unreadable:
        raise UnreadableImagesError(unreadable)
    empty = [split for split in splits if not entries[split]]
    if empty:
        raise ValueError(f"No readable image in split(s) {empty} under {root!r}.")
    turned: list[str] = []
    records = {split: _read(entries[split], root, turned) for split in splits}
    if span is None:
        written = write_dataset(out_dir, class_names, records, num_shards, overwrite=overwrite)
        return ConversionReport(class_names, written, unreadable, ignored, turned=turned)
    written, added = write_span(out_dir, span, class_names, records, num_shards, overwrite)
    return ConversionReport(class_names, written, unreadable, ignored, added, turned)


def _refuse_output_overlapping_source(root: str, out_dir: str) -> None:
    """Writing into, over or around the source could replace the very photos being read."""
    source, out = os.path.realpath(root), os.path.realpath(out_dir)
    common = os.path.commonpath([source, out])
    if common in (source, out):
        where = "is" if source == out else "holds" if common == out else "lies inside"
        raise ValueError(
            f"The output folder {out_dir!r} {where} the source folder {root!r}: write the "
            "records to a folder outside the photos. Nothing was written."
        )


def _files(class_dir: str) -> list[str]:
    if not os.path.isdir(class_dir):
        return []
    return [os.path.join(class_dir, name) for name in sorted(os.listdir(class_dir))]


def _read(entries: list[tuple[str, int]], root: str, turned: list[str]) -> Iterator[LabelledImage]:
    """Reads files one at a time while writing, so memory stays flat for big folders; a
    stored-turned photo is turned upright and its path added to `turned`."""
    for path, label in entries:
        with open(path, "rb") as f:
            encoded = f.read()
        turned_upright = upright(encoded)
        if turned_upright is not None:
            turned.append(path)
        yield LabelledImage(turned_upright or encoded, label, os.path.relpath(path, root))


def _refuse_unclear_class_names(found: set[str], split_dirs: list[str]) -> None:
    """labels.txt holds a class a line, stripped, and people read names without seeing case or
    Unicode form: a name it would change, or two names a reader would take for one, would make
    a labels file that names a class twice, or two classes for one."""

    def folders(names) -> str:
        paths = [os.path.join(d, n) for n in sorted(names) for d in split_dirs]
        return ", ".join(repr(path) for path in paths if os.path.isdir(path))

    broken = [name for name in found if name != " ".join(name.splitlines())]
    if broken:
        raise ValueError(f"Class folder names must fit on one line: {folders(broken)}.")
    padded = [name for name in found if name != name.strip()]
    if padded:
        raise ValueError(
            f"Class folder names must not begin or end with white space: {folders(padded)}. "
            "Rename them."
        )
    alike: dict[str, list[str]] = {}
    for name in found:
        alike.setdefault(unicodedata.normalize("NFKC", name).casefold(), []).append(name)
    clashes = [names for names in alike.values() if len(names) > 1]
    if clashes:
        raise ValueError(
            "Class folder names that differ only in case or Unicode form name one class or two? "
            f"{folders(clashes[0])}. Rename or merge them."
        )


def _class_folders(split_dir: str) -> list[str]:
    return [
        entry
        for entry in os.listdir(split_dir)
        if os.path.isdir(os.path.join(split_dir, entry)) and not entry.startswith(".")
    ]


def _why_unreadable(path: str, max_pixels: int) -> str | None:
    with open(path, "rb") as f:
        return why_undecodable(f.read(), max_pixels)
