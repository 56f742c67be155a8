import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from bad_records import declared_png
from imgclf.imagedata.folders import UnreadableImagesError, convert_folder
from imgclf.imagedata.orientation import ORIENTATION_TAG, UPRIGHT, orientation
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


def _sideways_photo(path) -> Image.Image:
    """A phone's photo stored turned (EXIF orientation 6: turn 90 degrees clockwise to view);
    returns the picture as a person sees it."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :10] = (250, 10, 10)  # a red band along the stored image's left edge
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, format="JPEG", quality=98, exif=exif)
    return ImageOps.exif_transpose(Image.open(path))


def test_a_photo_stored_turned_is_written_upright_and_counted(photo_folder, tmp_path):
    seen = _sideways_photo(photo_folder / "train" / "cats" / "phone.jpg")
    out = tmp_path / "records"
    report = convert_folder(str(photo_folder), str(out))
    assert report.turned == [str(photo_folder / "train" / "cats" / "phone.jpg")]
    assert "Turned upright by their EXIF orientation: 1 photo(s)" in report.summary()
    [record] = [r for r in read_records(str(out / "train" / "*")) if r.id.endswith("phone.jpg")]
    pixels = tf.io.decode_image(record.image).numpy()
    # What TensorFlow reads is the picture a person sees: 40 high, 20 wide, red along the top.
    assert pixels.shape == (40, 20, 3)
    assert np.abs(pixels.astype(int) - np.asarray(seen, int)).mean() < 3
    assert pixels[:10, :, 0].mean() > 200 and pixels[-10:, :, 0].mean() < 50
    assert orientation(record.image) == UPRIGHT
    # Every other file is written as it was.
    assert len(report.turned) == 1


def test_unreadable_images_are_named_with_why_and_nothing_is_written(photo_folder, tmp_path, capfd):
    broken = photo_folder / "train" / "cats" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    truncated = photo_folder / "eval" / "cats" / "truncated.jpg"
    _write_image(truncated, 70, "JPEG")
    truncated.write_bytes(truncated.read_bytes()[:100])
    # A phone's photo in another format, named .jpg; a note named like a photo.
    webp = photo_folder / "train" / "dogs" / "phone.jpg"
    _write_image(webp, 80, "WEBP")
    note = photo_folder / "train" / "dogs" / "note.jpeg"
    note.write_text("not a photo")
    out = tmp_path / "records"

    capfd.readouterr()
    with pytest.raises(UnreadableImagesError) as raised:
        convert_folder(str(photo_folder), str(out))

    assert sorted(raised.value.paths) == sorted(map(str, [broken, truncated, webp, note]))
    listing = str(raised.value)
    assert f"{broken}: truncated: a PNG file without its end (19 bytes)" in listing
    assert f"{truncated}: truncated: a JPEG file without its end (100 bytes)" in listing
    assert f"{webp}: unsupported format: WebP (TensorFlow decodes JPEG, PNG, GIF, BMP)" in listing
    assert f"{note}: not an image: no JPEG, PNG, GIF, BMP header" in listing
    assert "--skip-unreadable" in listing
    # TensorFlow's and libjpeg's own lines about them never reach the screen.
    assert capfd.readouterr().err == ""
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


def test_an_image_larger_than_the_bound_is_refused_from_its_header_with_why(photo_folder, tmp_path):
    huge = photo_folder / "train" / "dogs" / "panorama.png"
    huge.write_bytes(declared_png(20_000, 20_000))  # 400 million pixels in a few KB
    with pytest.raises(UnreadableImagesError) as raised:
        convert_folder(str(photo_folder), str(tmp_path / "records"))
    assert raised.value.paths == [str(huge)]
    assert f"{huge}: image too large: 20000 x 20000 pixels, more than the 50000000 allowed" in str(
        raised.value
    )
    # A bound of one's own, inclusive: the photos here are 24 x 20.
    report = convert_folder(
        str(photo_folder), str(tmp_path / "kept"), skip_unreadable=True, max_image_pixels=24 * 20
    )
    assert list(report.unreadable) == [str(huge)]
    assert report.written == {"train": 4, "eval": 2}


def test_skipping_unreadable_images_still_lists_them(photo_folder, tmp_path):
    broken = photo_folder / "train" / "cats" / "broken.png"
    broken.write_bytes(b"nope")
    report = convert_folder(str(photo_folder), str(tmp_path / "records"), skip_unreadable=True)
    assert list(report.unreadable) == [str(broken)]
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


@pytest.mark.parametrize(
    "renamed, refusal",
    [
        ("big\ncats", "Class folder names must fit on one line"),
        ("cats ", "Class folder names must not begin or end with white space"),
        ("Dogs", "Class folder names that differ only in case or Unicode form"),
        ("\uff44\uff4f\uff47\uff53", "Class folder names that differ only in case or Unicode form"),
    ],
)
def test_a_class_name_labels_txt_cannot_keep_apart_is_refused_naming_the_folders(
    photo_folder, tmp_path, renamed, refusal
):
    # A second class folder where the first stays: cats and "cats ", dogs and "Dogs".
    source = photo_folder / "train" / ("cats" if "cats" in renamed else "dogs")
    shutil.copytree(source, photo_folder / "train" / renamed)
    before = _tree(photo_folder)
    with pytest.raises(ValueError) as refused:
        convert_folder(str(photo_folder), str(tmp_path / "records"))
    message = str(refused.value)
    assert message.startswith(refusal)
    assert repr(str(photo_folder / "train" / renamed)) in message
    assert not (tmp_path / "records").exists()
    assert _tree(photo_folder) == before


def _tree(folder):
    """Every file under `folder`, by relative path, with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("out", "where"),
    [
        ("photos", "is"),  # convert-folder photos --out photos
        (".", "holds"),  # convert-folder proj/photos --out proj
        ("photos/records", "lies inside"),
        ("photos/train/cats", "lies inside"),
    ],
)
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_folder_that_overlaps_the_source_is_refused_whatever_the_flags(
    photo_folder, tmp_path, out, where, overwrite
):
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match=f"{where} the source folder") as raised:
        convert_folder(str(photo_folder), str(tmp_path / out), overwrite=overwrite)
    assert "overwrite" not in str(raised.value)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_the_overlap_check_sees_through_a_link(photo_folder, tmp_path):
    (tmp_path / "link").symlink_to(photo_folder)
    before = _tree(photo_folder)
    with pytest.raises(ValueError, match="is the source folder"):
        convert_folder(str(photo_folder), str(tmp_path / "link"), overwrite=True)
    assert _tree(photo_folder) == before


def test_overwrite_refuses_a_folder_it_did_not_write_and_suggests_nothing_dangerous(
    photo_folder, tmp_path
):
    elsewhere = tmp_path / "my-documents"
    (elsewhere / "taxes").mkdir(parents=True)
    (elsewhere / "taxes" / "2026.pdf").write_bytes(b"%PDF precious")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is not a dataset written by imgclf") as raised:
            convert_folder(str(photo_folder), str(elsewhere), overwrite=overwrite)
        assert "--overwrite" not in str(raised.value)
    assert _tree(elsewhere) == {"taxes/2026.pdf": b"%PDF precious"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-documents", "photos"]


def test_overwrite_replaces_only_the_files_the_earlier_conversion_wrote(photo_folder, tmp_path):
    out = tmp_path / "records"
    convert_folder(str(photo_folder), str(out), num_shards=2)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        convert_folder(str(photo_folder), str(out))
    (out / "NOTES.md").write_text("how I made these")
    (out / "train" / "extra.txt").write_text("mine too")
    (out / "empty-folder-of-mine").mkdir()
    (photo_folder / "eval" / "cats" / "e.png").unlink()
    source = _tree(photo_folder)

    report = convert_folder(str(photo_folder), str(out), num_shards=1, overwrite=True)

    assert report.written == {"train": 4, "eval": 1}
    assert _tree(photo_folder) == source
    assert (out / "NOTES.md").read_text() == "how I made these"
    assert (out / "train" / "extra.txt").read_text() == "mine too"
    assert (out / "empty-folder-of-mine").is_dir()
    # The two-shard files are gone: they were the earlier conversion's own.
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "data-00000-of-00001.tfrecord",
        "extra.txt",
    ]
    assert [r.id for r in read_records(str(out / "eval" / "*"))] == ["eval/birds/f.jpeg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "records"]


def test_overwrite_refuses_to_replace_a_file_the_earlier_conversion_did_not_write(
    photo_folder, tmp_path
):
    out = tmp_path / "records"
    convert_folder(str(photo_folder), str(out), num_shards=2)
    mine = out / "train" / "data-00000-of-00001.tfrecord"
    mine.write_bytes(b"a file of my own that happens to have this name")
    before = _tree(out)
    with pytest.raises(FileExistsError, match=r"train/data-00000-of-00001\.tfrecord would be"):
        convert_folder(str(photo_folder), str(out), num_shards=1, overwrite=True)
    assert _tree(out) == before
