import pytest

from imgclf.imagedata.spans import (
    NoSpanError,
    find_span,
    input_splits,
    newest_span,
    span_pattern,
    window,
)
from imgclf.settings.config import DataConfig


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
