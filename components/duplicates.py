"""The same image more than once: within a split, in train and in an eval split, under two labels.

The ImageValidator fingerprints the decoded pixels of every good record
(`inspection.Finding.fingerprint`), so a byte-for-byte copy and a lossless
re-encoding (a PNG saved again, a BMP of it) are found alike; a lossy
re-encoding (a JPEG saved again) changes the pixels and is not. Beam groups
the records by fingerprint; this module says what the groups mean and what
the policy makes of them:
- an eval image that is also in train makes the test accuracy count an image
  training saw: beyond `validation.max_split_overlap` the run fails;
- the same image under two labels is a labelling mistake (or a class folder
  copied into another): beyond `validation.max_conflicting_labels` it fails;
- a copy within a split only weighs that image twice: a warning.

Plain Python, tested without Beam.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from imgclf.components.inspection import SplitSummary, Verdict
from imgclf.settings.checks import ValidationConfig
from imgclf.settings.names import EVAL_SPLIT, TRAIN_SPLIT

# How many examples a failure or warning names; report.json lists every group.
NAMED = 3


@dataclass(frozen=True, order=True)
class Copy:
    """One record of an image found more than once."""

    split: str
    label: int
    location: str
    record_id: str

    def name(self, class_names: list[str]) -> str:
        where = f"{self.record_id} at {self.location}" if self.record_id else self.location
        return f"{where} ({class_names[self.label]})"


@dataclass
class Duplicates:
    """Every group of records whose images have the same pixels (two or more records each)."""

    groups: list[tuple[Copy, ...]]

    @classmethod
    def from_groups(cls, groups) -> Duplicates:
        """From Beam's groups of (split, label, location, record_id) tuples."""
        return cls(sorted(tuple(sorted(Copy(*copy) for copy in group)) for group in groups))

    def within(self) -> dict[str, list[Copy]]:
        """Per split, its records that repeat an earlier record of the split with the same
        label (under another label, the copy is a conflict: see `conflicting`)."""
        repeats: dict[str, list[Copy]] = {}
        for group in self.groups:
            seen = set()
            for copy in group:
                if (copy.split, copy.label) in seen:
                    repeats.setdefault(copy.split, []).append(copy)
                seen.add((copy.split, copy.label))
        return repeats

    def in_train(self) -> dict[str, list[tuple[Copy, Copy]]]:
        """Per split other than train, (its record, a train record of the same image)."""
        found: dict[str, list[tuple[Copy, Copy]]] = {}
        for group in self.groups:
            trained = [copy for copy in group if copy.split == TRAIN_SPLIT]
            for copy in group:
                if trained and copy.split != TRAIN_SPLIT:
                    found.setdefault(copy.split, []).append((copy, trained[0]))
        return found

    def conflicting(self) -> list[tuple[Copy, ...]]:
        """The groups whose records carry more than one label."""
        return [group for group in self.groups if len({copy.label for copy in group}) > 1]

    def describe(self) -> str:
        """One line for the text report."""
        if not self.groups:
            return "Every image is found once."
        parts = [f"Images found more than once: {len(self.groups)}"]
        parts += [
            f"{split}: {len(pairs)} also in train" for split, pairs in self.in_train().items()
        ]
        parts += [f"{split}: {len(copies)} repeats" for split, copies in self.within().items()]
        parts.append(f"{len(self.conflicting())} under different labels")
        return "; ".join(parts) + " (report.json lists them)"

    def to_dict(self) -> dict:
        return {
            "groups": [[list(astuple(copy)) for copy in group] for group in self.groups],
            "within_split": {split: len(copies) for split, copies in self.within().items()},
            "also_in_train": {split: len(pairs) for split, pairs in self.in_train().items()},
            "conflicting_labels": len(self.conflicting()),
        }

    @classmethod
    def from_dict(cls, values: dict) -> Duplicates:
        return cls.from_groups(values["groups"])


def judge_duplicates(
    duplicates: Duplicates,
    summaries: dict[str, SplitSummary],
    class_names: list[str],
    policy: ValidationConfig,
    verdict: Verdict,
) -> None:
    """Adds to `verdict` what the copies break: see the module's docstring."""
    warn = verdict.failures.append if policy.fail_on_warnings else verdict.warnings.append
    for split, pairs in duplicates.in_train().items():
        share = len(pairs) / summaries[split].good
        if share > policy.max_split_overlap:
            named = "; ".join(
                f"{copy.name(class_names)} = {trained.name(class_names)}"
                for copy, trained in pairs[:NAMED]
            )
            verdict.failures.append(
                f"{split}: {len(pairs)} of {summaries[split].good} images ({share:.1%}) are also "
                f"in the train split (the same pixels), more than the "
                f"{policy.max_split_overlap:.1%} allowed (validation.max_split_overlap): its "
                f"accuracy would count images training saw. For example: {named}"
            )
    conflicting = duplicates.conflicting()
    if len(conflicting) > policy.max_conflicting_labels:
        named = "; ".join(
            " = ".join(copy.name(class_names) for copy in group) for group in conflicting[:NAMED]
        )
        verdict.failures.append(
            f"Images under two labels (the same pixels in two classes): {len(conflicting)}, "
            f"more than the {policy.max_conflicting_labels} allowed "
            f"(validation.max_conflicting_labels). For example: {named}"
        )
    for split, copies in duplicates.within().items():
        named = "; ".join(copy.name(class_names) for copy in copies[:NAMED])
        warn(
            f"{split}: images repeating another of the split (the same pixels and label): "
            f"{len(copies)}, each weighing twice in the loss. For example: {named}"
        )


def eval_images_in_train(image_report: dict) -> int | None:
    """How many images of the eval split are also in train, from the ImageValidator's report;
    None from a report written before images were compared across splits."""
    if "duplicates" not in image_report:
        return None
    return image_report["duplicates"]["also_in_train"].get(EVAL_SPLIT, 0)


def held_out(example_count: int, in_train: int | None) -> str:
    """What the test accuracy was measured on, true to how many of its images training saw."""
    if in_train is None:
        return f"{example_count} images of the eval split (not compared with the train split)"
    if not in_train:
        return f"{example_count} images of the eval split, which training never saw"
    return (
        f"{example_count} images of the eval split, {in_train} of which are also in the "
        "train split (validation.max_split_overlap allowed it): training saw those"
    )
