import numpy as np
import pytest
from PIL import Image

from imgclf.imagedata.folders import UnreadableImagesError, convert_folder
from imgclf.imagedata.records import read_labels, read_records


def _write_image(path, colour, image_format="PNG", mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((20, 24, 3), colour, dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, format=image_format)


@pytest.fixture
def photo_folder(tmp_path):
    root = tmp_path / "photos"
    _write_image(root / "train" / "cats" / "a.png", 10)
    _write_image(root / "train" / "cats" / "b.jpg", 20, "JPEG")
    _write_image(root / "train" / "dogs" / "c.png", 30, mode="L")
    _write_image(root / "train" / "dogs" / "d.png", 40, mode="RGBA")
    _write_image(root / "eval" / "cats" / "e.png", 50)
    _write_image(root / "eval" / "birds" / "f.jpeg", 60, "JPEG")
    (root / "train" / "dogs" / "notes.txt").write_text("not an image")
    return root


def test_folders_become_records_with_sorted_class_labels(photo_folder, tmp_path):
    out = tmp_path / "records"
    report = convert_folder(str(photo_folder), str(out), num_shards=2)

    assert report.class_names == ["birds", "cats", "dogs"]
    assert read_labels(str(out / "labels.txt")) == ["birds", "cats", "dogs"]
    assert report.written == {"train": 4, "eval": 2}
    train = {r.id: r for r in read_records(str(out / "train" / "*"))}
    assert {id_: r.label for id_, r in train.items()} == {
        "train/cats/a.png": 1,
        "train/cats/b.jpg": 1,
        "train/dogs/c.png": 2,
        "train/dogs/d.png": 2,
    }
    # The original file bytes are kept, not re-encoded.
    assert train["train/cats/b.jpg"].image == (photo_folder / "train/cats/b.jpg").read_bytes()
    assert {r.label for r in read_records(str(out / "eval" / "*"))} == {0, 1}
    assert report.ignored == [str(photo_folder / "train" / "dogs" / "notes.txt")]


def test_unreadable_images_are_named_and_nothing_is_written(photo_folder, tmp_path):
    broken = photo_folder / "train" / "cats" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    truncated = photo_folder / "eval" / "cats" / "truncated.jpg"
    _write_image(truncated, 70, "JPEG")
    truncated.write_bytes(truncated.read_bytes()[:100])
    out = tmp_path / "records"

    with pytest.raises(UnreadableImagesError) as raised:
        convert_folder(str(photo_folder), str(out))

    assert sorted(raised.value.paths) == sorted([str(broken), str(truncated)])
    assert str(broken) in str(raised.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_skipping_unreadable_images_still_lists_them(photo_folder, tmp_path):
    broken = photo_folder / "train" / "cats" / "broken.png"
    broken.write_bytes(b"nope")
    report = convert_folder(str(photo_folder), str(tmp_path / "records"), skip_unreadable=True)
    assert report.unreadable == [str(broken)]
    assert report.written["train"] == 4
    assert str(broken) in report.summary()


def test_a_missing_split_folder_is_a_clear_error(photo_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="test"):
        convert_folder(str(photo_folder), str(tmp_path / "out"), splits=["train", "test"])


def test_a_span_keeps_earlier_labels_and_appends_new_classes(photo_folder, tmp_path):
    out = tmp_path / "spans"
    first = convert_folder(str(photo_folder), str(out), span=1)
    assert first.class_names == ["birds", "cats", "dogs"]
    assert first.added_classes == []
    _write_image(photo_folder / "train" / "ants" / "g.png", 70)
    second = convert_folder(str(photo_folder), str(out), span=2)
    # "ants" sorts first, but the known classes keep their labels: it comes last.
    assert second.class_names == ["birds", "cats", "dogs", "ants"]
    assert second.added_classes == ["ants"]
    assert "New classes in this span: ants" in second.summary()
    assert read_labels(str(out / "labels.txt")) == ["birds", "cats", "dogs", "ants"]
    ants = [r for r in read_records(str(out / "span-2" / "train" / "*")) if r.id.endswith("g.png")]
    assert [r.label for r in ants] == [3]
    assert (out / "span-1" / "train").is_dir()


def test_a_folder_inside_a_class_folder_is_named_not_a_traceback(photo_folder, tmp_path):
    (photo_folder / "train" / "cats" / "more.jpg").mkdir()
    with pytest.raises(ValueError, match=r"cats/more\.jpg is a folder inside a class folder"):
        convert_folder(str(photo_folder), str(tmp_path / "records"))
    assert not (tmp_path / "records").exists()


def test_a_class_name_that_breaks_a_line_is_refused(photo_folder, tmp_path):
    (photo_folder / "train" / "cats").rename(photo_folder / "train" / "big\ncats")
    with pytest.raises(ValueError, match=r"must fit on one line: 'big\\ncats'"):
        convert_folder(str(photo_folder), str(tmp_path / "records"))
    assert not (tmp_path / "records").exists()
