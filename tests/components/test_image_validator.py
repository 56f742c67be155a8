"""The ImageValidator's executor, through real Beam, on a folder of photos converted as a user
would: copies across splits, under two labels and within a split, each found and named."""

import shutil

import numpy as np
import pytest
from PIL import Image
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from imgclf.components.image_validator import Executor, ImageValidationReport, read_report
from imgclf.imagedata.folders import convert_folder
from imgclf.imagedata.records import read_records
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.settings.checks import ValidationConfig
from imgclf.settings.data import DataConfig

SPLITS = ["train", "eval"]


def _photo(path, seed: int, image_format: str = "PNG") -> None:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=image_format)


def _folders(root) -> None:
    """Six photos a class in train, two in eval, and three kinds of copy."""
    for split, count, first_seed in (("train", 6, 0), ("eval", 2, 100)):
        for label, name in enumerate(("cat", "dog")):
            for index in range(count):
                _photo(root / split / name / f"{index}.png", first_seed + 10 * label + index)
    # A lossless re-encoding of a training photo, in eval: a leak.
    _photo(root / "eval" / "cat" / "0-again.bmp", 0, "BMP")
    # A cat photo filed as a dog too: a conflicting label.
    shutil.copy(root / "train" / "cat" / "1.png", root / "train" / "dog" / "stray.png")
    # The same dog twice in eval: a repeat.
    shutil.copy(root / "eval" / "dog" / "0.png", root / "eval" / "dog" / "0-copy.png")


def _artifact(kind, uri) -> standard_artifacts.Artifact:
    artifact = kind()
    artifact.uri = str(uri)
    return artifact


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """The executor's report and valid examples for the converted folders."""
    root = tmp_path_factory.mktemp("image_validator")
    _folders(root / "photos")
    data = DataConfig(root=str(root / "records"))
    convert_folder(str(root / "photos"), data.root)
    schema = _artifact(standard_artifacts.Schema, root / "schema")
    write_schema(make_schema(data), str(root / "schema" / "schema.pbtxt"))
    examples = _artifact(standard_artifacts.Examples, root / "examples")
    examples.split_names = artifact_utils.encode_split_names(SPLITS)
    for split in SPLITS:
        shutil.copytree(root / "records" / split, root / "examples" / f"Split-{split}")
    report = _artifact(ImageValidationReport, root / "report")
    valid = _artifact(standard_artifacts.Examples, root / "valid")
    for folder in (report.uri, valid.uri):
        (root / folder).mkdir()
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=[], tmp_dir=str(root / "tmp"), unique_id="1"
    )
    Executor(context).Do(
        {"examples": [examples], "schema": [schema]},
        {"report": [report], "valid_examples": [valid]},
        {
            "labels_path": data.labels_path,
            "image_key": data.image_key,
            "label_key": data.label_key,
            "max_image_pixels": data.max_image_pixels,
            "policy": ValidationConfig().model_dump_json(),
        },
    )
    return read_report(report.uri), valid


def test_every_kind_of_copy_is_counted(validated):
    report, _ = validated
    duplicates = report["duplicates"]
    assert duplicates["also_in_train"] == {"eval": 1}
    assert duplicates["within_split"] == {"eval": 1}
    assert duplicates["conflicting_labels"] == 1
    assert len(duplicates["groups"]) == 3


def test_the_leak_and_the_conflict_fail_naming_the_files(validated):
    report, _ = validated
    assert report["passed"] is False
    leak, conflict = report["failures"]
    assert leak.startswith("eval: 1 of 6 images (16.7%) are also in the train split")
    assert "eval/cat/0-again.bmp at eval/" in leak
    assert "= train/cat/0.png at train/" in leak
    assert conflict.startswith("Images under two labels (the same pixels in two classes): 1,")
    assert "train/cat/1.png at train/" in conflict and "train/dog/stray.png at train/" in conflict


def test_a_repeat_within_a_split_warns(validated):
    report, _ = validated
    [repeat] = [line for line in report["warnings"] if "repeating another" in line]
    assert repeat.startswith("eval: images repeating another of the split")
    assert "eval/dog/0-copy.png at eval/" in repeat


def test_copies_are_counted_not_dropped(validated):
    _, valid = validated
    counts = {
        split: len(list(read_records(artifact_utils.get_split_uri([valid], split) + "/*")))
        for split in SPLITS
    }
    assert counts == {"train": 13, "eval": 6}
