import io

import numpy as np
import pytest
from PIL import Image

from imgclf.imagedata.records import read_labels, read_records
from imgclf.imagedata.sample import (
    DEFAULT_CLASSES,
    PRETRAINING_CLASSES,
    generate_split,
    write_sample_dataset,
)
from imgclf.settings.names import LABELS_FILENAME


def test_same_seed_gives_identical_bytes_and_other_seeds_differ():
    first = list(generate_split(DEFAULT_CLASSES, "train", 2, size=32, seed=7))
    again = list(generate_split(DEFAULT_CLASSES, "train", 2, size=32, seed=7))
    other = list(generate_split(DEFAULT_CLASSES, "train", 2, size=32, seed=8))
    assert [r.image for r in first] == [r.image for r in again]
    assert all(a.image != b.image for a, b in zip(first, other))


def test_splits_differ_and_every_class_appears_equally():
    train = list(generate_split(DEFAULT_CLASSES, "train", 3, size=32))
    evals = list(generate_split(DEFAULT_CLASSES, "eval", 3, size=32))
    assert {r.image for r in train}.isdisjoint(r.image for r in evals)
    assert np.bincount([r.label for r in train]).tolist() == [3] * len(DEFAULT_CLASSES)


@pytest.mark.parametrize(("image_format", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG")])
def test_images_are_encoded_rgb_files_of_the_asked_size(image_format, pil_format):
    (record, *_) = generate_split(DEFAULT_CLASSES, "eval", 1, size=48, image_format=image_format)
    image = Image.open(io.BytesIO(record.image))
    assert (image.format, image.size, image.mode) == (pil_format, (48, 48), "RGB")


def test_demo_and_pretraining_classes_are_disjoint():
    assert set(DEFAULT_CLASSES).isdisjoint(PRETRAINING_CLASSES)
    assert len(PRETRAINING_CLASSES) >= 4


def test_written_dataset_has_sharded_splits_and_labels_file(tmp_path):
    out = str(tmp_path / "data")
    counts = write_sample_dataset(out, train_per_class=3, eval_per_class=2, num_shards=2)
    assert counts == {"train": 12, "eval": 8}
    assert sorted(p.name for p in (tmp_path / "data" / "train").iterdir()) == [
        "data-00000-of-00002.tfrecord",
        "data-00001-of-00002.tfrecord",
    ]
    assert read_labels(f"{out}/{LABELS_FILENAME}") == list(DEFAULT_CLASSES)
    records = list(read_records(f"{out}/train/*"))
    assert len(records) == 12
    assert sorted(r.id for r in records) == sorted({r.id for r in records})


def test_a_failed_write_leaves_no_dataset_behind(tmp_path):
    out = tmp_path / "data"
    with pytest.raises(ValueError, match="Unknown sample classes"):
        write_sample_dataset(str(out), class_names=("circle", "hexagon"))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_dataset_is_not_overwritten_by_accident(tmp_path):
    out = str(tmp_path / "data")
    write_sample_dataset(out, train_per_class=1, eval_per_class=1)
    with pytest.raises(FileExistsError):
        write_sample_dataset(out, train_per_class=1, eval_per_class=1)
    counts = write_sample_dataset(out, train_per_class=2, eval_per_class=1, overwrite=True)
    assert counts["train"] == 8
