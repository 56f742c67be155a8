"""The model store's choices, from what each served version records about itself."""

import json

from imgclf.modelstore.history import (
    baseline_version,
    earlier_span_version,
    find_versions,
    served_versions,
)
from imgclf.modelstore.serving_folder import PROVENANCE_FILE, SAVED_MODEL_FILE
from imgclf.settings.names import NO_VERSION

SHAPES = ["circle", "square"]


def served(root, version, span, classes=SHAPES):
    path = root / str(version) / PROVENANCE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"span": span, "class_names": classes}))
    (root / str(version) / SAVED_MODEL_FILE).touch()


def test_versions_are_read_newest_first_and_unrecorded_ones_are_passed_over(tmp_path):
    served(tmp_path, 1, 1)
    served(tmp_path, 2, 2)
    (tmp_path / "3").mkdir()  # pushed by hand or by an older release: no record
    (tmp_path / "3" / SAVED_MODEL_FILE).touch()
    (tmp_path / "4").write_text("a file named like a version")
    recorded = served_versions(str(tmp_path))
    assert [version for version, _ in recorded] == [2, 1]
    assert served_versions(str(tmp_path / "absent")) == []


def test_the_baseline_is_the_newest_version_with_the_same_classes(tmp_path):
    served(tmp_path, 1, 1)
    served(tmp_path, 2, 2, classes=[*SHAPES, "ring"])
    recorded = served_versions(str(tmp_path))
    assert baseline_version(recorded, SHAPES) == 1
    assert baseline_version(recorded, [*SHAPES, "ring"]) == 2
    assert baseline_version(recorded, ["other"]) is None


def test_warm_start_and_drift_use_the_newest_version_of_an_earlier_span(tmp_path):
    served(tmp_path, 1, 1)
    served(tmp_path, 2, 3)
    recorded = served_versions(str(tmp_path))
    assert earlier_span_version(recorded, 4) == 2
    assert earlier_span_version(recorded, 3) == 1  # a rerun of span 3 never starts from itself
    assert earlier_span_version(recorded, 1) is None


def test_find_versions_says_none_where_there_is_none(tmp_path):
    served(tmp_path, 1, 1)
    served(tmp_path, 2, 2)
    assert find_versions(str(tmp_path), SHAPES, 3, warm_start=True) == {
        "baseline_version": 2,
        "warm_start_version": 2,
        "previous_version": 2,
    }
    assert find_versions(str(tmp_path), ["other"], 1, warm_start=False) == {
        "baseline_version": NO_VERSION,
        "warm_start_version": NO_VERSION,
        "previous_version": NO_VERSION,
    }
