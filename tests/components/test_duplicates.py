"""The same image found more than once: what each kind of copy means and what the policy does."""

import pytest

from imgclf.components.duplicates import (
    Copy,
    Duplicates,
    eval_images_in_train,
    held_out,
    judge_duplicates,
)
from imgclf.components.inspection import SplitSummary, Verdict
from imgclf.settings.checks import ValidationConfig

CLASSES = ["cat", "dog"]


def _copies(*groups) -> Duplicates:
    """Beam's groups: (split, label, location, record id), in any order."""
    return Duplicates.from_groups([list(reversed(group)) for group in groups])


LEAK = [("train", 0, "train/a[0]", "cat/1.png"), ("eval", 0, "eval/b[3]", "cat/1-copy.bmp")]
CONFLICT = [("train", 0, "train/a[1]", "cat/2.png"), ("train", 1, "train/a[7]", "dog/2.png")]
REPEAT = [("eval", 1, "eval/b[0]", "dog/3.png"), ("eval", 1, "eval/b[1]", "dog/3b.png")]


def _summaries(good: int = 10) -> dict[str, SplitSummary]:
    return {"train": SplitSummary(total=good, good=good), "eval": SplitSummary(total=4, good=4)}


def _judge(duplicates: Duplicates, **policy) -> Verdict:
    verdict = Verdict()
    judge_duplicates(duplicates, _summaries(), CLASSES, ValidationConfig(**policy), verdict)
    return verdict


def test_each_kind_of_copy_is_told_apart():
    duplicates = _copies(LEAK, CONFLICT, REPEAT)
    assert duplicates.in_train() == {"eval": [(Copy(*LEAK[1]), Copy(*LEAK[0]))]}
    assert duplicates.within() == {"eval": [Copy(*REPEAT[1])]}
    assert duplicates.conflicting() == [tuple(Copy(*copy) for copy in CONFLICT)]
    assert Duplicates.from_dict(duplicates.to_dict()) == duplicates
    assert duplicates.to_dict()["also_in_train"] == {"eval": 1}
    assert duplicates.to_dict()["conflicting_labels"] == 1


def test_an_eval_image_also_in_train_fails_by_default_naming_both_files():
    verdict = _judge(_copies(LEAK))
    [failure] = verdict.failures
    assert failure.startswith("eval: 1 of 4 images (25.0%) are also in the train split")
    assert "(validation.max_split_overlap)" in failure
    assert "cat/1-copy.bmp at eval/b[3] (cat) = cat/1.png at train/a[0] (cat)" in failure


def test_an_overlap_within_the_allowed_share_passes():
    assert _judge(_copies(LEAK), max_split_overlap=0.25).passed
    assert not _judge(_copies(LEAK), max_split_overlap=0.2).passed


def test_the_same_image_under_two_labels_fails_by_default_naming_both():
    verdict = _judge(_copies(CONFLICT))
    assert verdict.failures == [
        "Images under two labels (the same pixels in two classes): 1, more than the 0 "
        "allowed (validation.max_conflicting_labels). For example: cat/2.png at train/a[1] "
        "(cat) = dog/2.png at train/a[7] (dog)"
    ]
    assert _judge(_copies(CONFLICT), max_conflicting_labels=1).failures == []


def test_a_copy_within_a_split_warns_or_fails_with_fail_on_warnings():
    verdict = _judge(_copies(REPEAT))
    assert verdict.failures == []
    [warning] = verdict.warnings
    assert warning.startswith(
        "eval: images repeating another of the split (the same pixels and label): 1,"
    )
    assert "dog/3b.png at eval/b[1] (dog)" in warning
    assert not _judge(_copies(REPEAT), fail_on_warnings=True).passed


def test_no_copy_changes_nothing():
    duplicates = _copies()
    assert _judge(duplicates) == Verdict()
    assert duplicates.describe() == "Every image is found once."


@pytest.mark.parametrize(
    "report, said",
    [
        (
            {"duplicates": {"also_in_train": {}}},
            "64 images of the eval split, which training never saw",
        ),
        (
            {"duplicates": {"also_in_train": {"eval": 3}}},
            "64 images of the eval split, 3 of which are also in the train split",
        ),
        ({}, "64 images of the eval split (not compared with the train split)"),
    ],
)
def test_what_the_accuracy_was_measured_on_is_said_truly(report, said):
    assert held_out(64, eval_images_in_train(report)).startswith(said)
