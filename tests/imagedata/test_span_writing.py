import pytest

from imgclf.imagedata.records import merge_classes, read_labels, read_records
from imgclf.imagedata.sample import write_sample_span


def test_a_span_may_add_classes_after_the_known_ones_only():
    assert merge_classes([], ["a", "b"]) == ["a", "b"]
    assert merge_classes(["a", "b"], ["a", "b", "c"]) == ["a", "b", "c"]
    assert merge_classes(["a", "b", "c"], ["a", "b"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"keep the labels of the classes before it, in order"):
        merge_classes(["a", "b"], ["b", "a"])


def test_sample_spans_hold_new_images_and_share_one_labels_file(tmp_path):
    root = str(tmp_path / "data")
    counts, added = write_sample_span(root, 1, train_per_class=2, eval_per_class=1)
    assert counts == {"train": 8, "eval": 4} and added == []
    five = ("circle", "square", "triangle", "plus", "ring")
    _, added = write_sample_span(root, 2, class_names=five, train_per_class=2, eval_per_class=1)
    assert added == ["ring"]
    assert read_labels(f"{root}/labels.txt")[-1] == "ring"
    first = {r.image for r in read_records(f"{root}/span-1/train/*")}
    second = {r.image for r in read_records(f"{root}/span-2/train/*")}
    assert not first & second  # seeded by span number: new data, not a copy
    with pytest.raises(FileExistsError):
        write_sample_span(root, 2, train_per_class=2, eval_per_class=1)
    with pytest.raises(ValueError, match="keep the labels"):
        write_sample_span(root, 3, class_names=("square", "circle"), train_per_class=2)
    assert read_labels(f"{root}/labels.txt")[-1] == "ring"
