import shutil
from pathlib import Path

import pytest

from imgclf.imagedata.sample import write_sample_span
from imgclf.imagedata.spans import (
    NoSpanError,
    find_span,
    input_splits,
    newest_span,
    span_pattern,
    window,
)
from imgclf.settings.data import DataConfig


@pytest.fixture
def spans(span_data) -> DataConfig:
    return span_data


def test_the_newest_span_or_the_one_configured(spans):
    assert newest_span(spans).number == 4
    assert newest_span(spans.model_copy(update={"span": 2})).number == 2
    assert span_pattern(spans, spans.train_pattern, newest_span(spans)) == (
        f"{spans.root}/span-4/train/*"
    )


def test_a_missing_span_is_named_with_the_patterns(spans):
    with pytest.raises(NoSpanError, match=r"No files for span 3 match .*span-\{SPAN\}/train/"):
        find_span(spans.root, input_splits(spans), 3)


def test_a_window_skips_absent_spans(spans):
    assert [s.number for s in window(spans.root, input_splits(spans), 4, 3)] == [2, 4]
    assert [s.number for s in window(spans.root, input_splits(spans), 2, 5)] == [1, 2]


def test_data_without_spans_is_span_0(tmp_path):
    from imgclf.imagedata.sample import write_sample_dataset

    write_sample_dataset(str(tmp_path / "flat"), train_per_class=1, eval_per_class=1)
    data = DataConfig(root=str(tmp_path / "flat"))
    assert newest_span(data).number == 0
    assert span_pattern(data, data.train_pattern, newest_span(data)) == f"{data.root}/train/*"


def test_a_data_root_that_does_not_exist_is_named_not_read_as_span_0(tmp_path):
    missing = DataConfig(root=str(tmp_path / "no-such-folder"))
    with pytest.raises(NoSpanError, match=f"The data root {missing.root} does not exist"):
        newest_span(missing)


def test_a_split_whose_pattern_matches_no_file_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "data.tfrecord").touch()
    data = DataConfig(root=str(tmp_path))
    with pytest.raises(NoSpanError, match=f"No files match {tmp_path}/eval/\\*, the eval split"):
        newest_span(data)


def _arriving(root, span: int, splits=("train",)) -> None:
    """A span still being copied in: some of its shards, no completeness marker yet."""
    source = Path(root) / "span-1"
    for split in splits:
        shutil.copytree(source / split, Path(root) / f"span-{span}" / split)


def test_a_span_still_arriving_is_skipped_with_a_warning_until_its_marker(tmp_path, caplog):
    root = tmp_path / "data"
    write_sample_span(str(root), 1, train_per_class=1, eval_per_class=1)
    assert (root / "span-1" / "_SUCCESS").exists()  # imgclf's writers put it last
    data = DataConfig(
        root=str(root), train_pattern="span-{SPAN}/train/*", eval_pattern="span-{SPAN}/eval/*"
    )
    _arriving(root, 2, ("train", "eval"))  # every split there, the marker not yet
    _arriving(root, 3)  # train only: before, "No files for any span match"
    assert newest_span(data).number == 1
    assert f"Span 3 ({root}/span-3) has no _SUCCESS yet: still arriving? Skipped." in caplog.text
    assert f"Span 2 ({root}/span-2) has no _SUCCESS yet" in caplog.text
    (root / "span-2" / "_SUCCESS").touch()
    assert newest_span(data).number == 2
    assert [s.number for s in window(str(root), input_splits(data), 3, 3, "_SUCCESS")] == [1, 2]
    # Without a marker, TFX's rule: span 3's train shards alone make it the newest train span.
    with pytest.raises(NoSpanError, match="Latest span should be the same for each split"):
        newest_span(data.model_copy(update={"span_complete_marker": ""}))


def test_no_complete_span_is_named_with_what_to_do(tmp_path):
    root = tmp_path / "data"
    write_sample_span(str(root), 1, train_per_class=1, eval_per_class=1)
    (root / "span-1" / "_SUCCESS").unlink()
    data = DataConfig(
        root=str(root), train_pattern="span-{SPAN}/train/*", eval_pattern="span-{SPAN}/eval/*"
    )
    with pytest.raises(NoSpanError, match=r"No span under .* is complete: none of the folders "):
        newest_span(data)


def test_a_marker_needs_the_span_in_a_folder_of_the_patterns():
    in_file_names = {"train_pattern": "train/part-{SPAN}-*", "eval_pattern": "eval/part-{SPAN}-*"}
    with pytest.raises(ValueError, match=r"span_complete_marker: \{SPAN\} must name a folder"):
        DataConfig(**in_file_names)
    assert DataConfig(**in_file_names, span_complete_marker="").has_spans
