import io

import numpy as np
import pytest
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2

from bad_records import declared_png, defects, encode, example, good_variants
from imgclf.components.inspection import (
    LISTED_IN_TEXT,
    Finding,
    SplitSummary,
    feature_kinds,
    inspect_record,
    judge,
    render_text,
)
from imgclf.imagedata.orientation import ORIENTATION_TAG
from imgclf.settings.checks import ValidationConfig

CLASSES = ["a", "b", "c", "d"]
KINDS = {"image": "bytes_list", "label": "int64_list", "id": "bytes_list"}


def _inspect(serialized: bytes, min_image_size: int = 8, max_image_pixels: int = 10**6) -> Finding:
    return inspect_record(
        serialized,
        "train/data[0]",
        kinds=KINDS,
        image_key="image",
        label_key="label",
        num_classes=len(CLASSES),
        min_image_size=min_image_size,
        max_image_pixels=max_image_pixels,
    )


EXPECTED_PROBLEMS = {
    "corrupt-bytes": ("undecodable image", "image does not decode"),
    "truncated-jpeg": ("undecodable image", "image does not decode"),
    "not-an-image": ("undecodable image", "image does not decode: Unknown image file format"),
    "no-image": ("no image", "no 'image' feature"),
    "no-label": ("no label", "no 'label' feature"),
    "label-as-bytes": ("wrong type", "'label' holds a bytes_list; the schema says int64_list"),
    "label-out-of-range": ("label out of range", "label 7 is outside [0, 3]"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEMS))
def test_each_defect_is_found_and_named_with_the_record(name):
    finding = _inspect(defects()[name])
    kind, problem = EXPECTED_PROBLEMS[name]
    assert finding.kind == kind
    assert finding.problem.startswith(problem)
    assert finding.record_id == name
    assert finding.location == "train/data[0]"


@pytest.mark.parametrize(("name", "channels"), [("grayscale", 1), ("rgba", 4)])
def test_grayscale_and_rgba_images_are_good_and_their_channels_counted(name, channels):
    finding = _inspect(good_variants()[name])
    assert finding.problem is None
    assert (finding.height, finding.width, finding.channels) == (32, 32, channels)


def test_the_fingerprint_is_of_the_pixels_whatever_the_lossless_encoding():
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    png, bmp = (_inspect(example(encode(pixels, kind))) for kind in ("PNG", "BMP"))
    assert png.fingerprint == bmp.fingerprint
    other = pixels.copy()
    other[0, 0, 0] ^= 1
    assert _inspect(example(encode(other))).fingerprint != png.fingerprint
    # The same pixel values, grey: another image.
    grey = _inspect(example(encode(pixels, mode="L"))).fingerprint
    assert grey not in (png.fingerprint, "")


def test_an_image_stored_turned_is_good_counted_and_warned_of():
    pixels = np.random.default_rng(0).integers(0, 255, (32, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", exif=exif)
    finding = _inspect(example(buffer.getvalue()))
    assert finding.problem is None and finding.turned
    assert not _inspect(example(encode(pixels))).turned
    summary = _summary([finding] + [_good(label) for label in range(4) for _ in range(5)])
    assert summary.turned == 1
    verdict = judge({"train": summary}, CLASSES, ValidationConfig())
    assert verdict.passed
    assert verdict.warnings == [
        "train: 1 images are stored turned (an EXIF orientation tag), and training and "
        "serving read them as stored, not as a person sees them: imgclf convert-folder "
        "writes photos upright"
    ]


def test_bytes_that_are_not_a_tf_example_are_found():
    finding = _inspect(b"\xff\xff\xff not a protocol buffer")
    assert finding.kind == "not a tf.Example"


def test_an_image_larger_than_the_bound_is_bad_from_its_header_never_decoded():
    finding = _inspect(example(declared_png(2000, 1000), 0, "huge"), max_image_pixels=10**6)
    assert (finding.kind, finding.record_id) == ("image too large", "huge")
    assert finding.problem == (
        "image is 1000x2000, more than 1000000 pixels (data.max_image_pixels); not decoded"
    )


def test_an_image_smaller_than_the_policy_is_bad():
    tiny = example(encode(np.zeros((4, 6, 3), np.uint8)), 0, "tiny")
    assert _inspect(tiny, min_image_size=8).problem == "image is 4x6, smaller than 8 pixels"
    assert _inspect(tiny, min_image_size=4).problem is None


def test_an_extra_feature_of_any_name_is_allowed():
    png = encode(np.full((16, 16, 3), 128, np.uint8))
    finding = _inspect(example(png, 2, "with-extra", photographer=b"ann"))
    assert finding.problem is None
    assert finding.label == 2


def test_feature_kinds_come_from_the_schema():
    schema = schema_pb2.Schema()
    schema.feature.add(name="image", type=schema_pb2.BYTES)
    schema.feature.add(name="label", type=schema_pb2.INT)
    schema.feature.add(name="weight", type=schema_pb2.FLOAT)
    assert feature_kinds(schema) == {
        "image": "bytes_list",
        "label": "int64_list",
        "weight": "float_list",
    }


def _summary(findings) -> SplitSummary:
    summary = SplitSummary()
    for finding in findings:
        summary.add(finding)
    return summary


def _good(label: int, size: int = 32, channels: int = 3) -> Finding:
    return Finding("train/f[0]", "", label, size, size, channels)


def test_a_summary_counts_every_record_and_merges_and_round_trips():
    first = _summary([_good(0, 16), _good(1, 40, 1), _inspect(defects()["no-label"])])
    second = _summary([_good(1, 24, 4), _inspect(defects()["not-an-image"])])
    merged = SplitSummary().merge(first).merge(second)
    assert (merged.total, merged.good, len(merged.bad)) == (5, 3, 2)
    assert merged.labels == {0: 1, 1: 2}
    assert merged.channels == {3: 1, 1: 1, 4: 1}
    assert (merged.min_height, merged.max_height) == (16, 40)
    assert merged.problems == {"no label": 1, "undecodable image": 1}
    assert SplitSummary.from_dict(merged.to_dict()).to_dict() == merged.to_dict()


def _balanced(per_class: int, classes: int = 4) -> SplitSummary:
    return _summary([_good(label) for label in range(classes) for _ in range(per_class)])


POLICY = ValidationConfig()


def test_clean_balanced_splits_pass():
    verdict = judge({"train": _balanced(10), "eval": _balanced(5)}, CLASSES, POLICY)
    assert verdict.passed
    assert verdict.warnings == []


def test_bad_records_within_the_allowed_fraction_pass_and_beyond_it_fail():
    train = _balanced(25)  # 100 good records
    train.add(_inspect(defects()["no-image"]))
    lenient = ValidationConfig(max_bad_fraction=0.02)
    assert judge({"train": train}, CLASSES, lenient).passed
    verdict = judge({"train": train}, CLASSES, ValidationConfig(max_bad_fraction=0.005))
    assert verdict.failures == [
        "train: 1 of 101 records are bad (1.0%, more than the 0.5% allowed): 1 no image"
    ]


def test_an_empty_split_fails():
    verdict = judge({"train": _balanced(10), "eval": SplitSummary()}, CLASSES, POLICY)
    assert verdict.failures == ["eval: the split holds no records"]


def test_too_few_training_images_of_a_class_fail():
    train = _summary([_good(label) for label in (0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3)])
    verdict = judge({"train": train}, CLASSES, POLICY)
    assert verdict.failures == ["train: fewer than 5 good images of b (2), d (1)"]


def test_imbalance_and_a_class_missing_from_eval_warn_unless_configured_to_fail():
    train = _summary([_good(0)] * 200 + [_good(label) for label in (1, 2, 3) for _ in range(10)])
    evaluation = _balanced(5, classes=3)
    verdict = judge({"train": train, "eval": evaluation}, CLASSES, POLICY)
    assert verdict.passed
    assert verdict.warnings == [
        "train: classes are imbalanced: the largest has 200 images, the smallest 10 "
        "(more than 10x)",
        "eval: no image of d",
    ]
    strict = judge(
        {"train": train, "eval": evaluation}, CLASSES, ValidationConfig(fail_on_warnings=True)
    )
    assert strict.failures == verdict.warnings


def test_the_text_report_lists_counts_sizes_labels_and_each_bad_record():
    train = _balanced(5)
    for finding in [_inspect(record) for record in defects().values()]:
        train.add(finding)
    verdict = judge({"train": train}, CLASSES, POLICY)
    text = render_text({"train": train}, CLASSES, verdict)
    assert text.startswith("Image validation: FAILED\n  FAIL: train: 7 of 27 records are bad")
    assert "train: 27 records, 20 good" in text
    assert "sizes 32-32 x 32-32 px; channels in the files: 3: 20" in text
    assert "labels: a 5, b 5, c 5, d 5" in text
    for name in defects():
        assert f"bad: {name} at train/data[0]: " in text


def test_the_text_report_lists_a_bounded_number_of_bad_records():
    train = _summary([_inspect(defects()["no-image"])] * (LISTED_IN_TEXT + 3))
    text = render_text({"train": train}, CLASSES, judge({"train": train}, CLASSES, POLICY))
    assert text.count("bad: no-image") == LISTED_IN_TEXT
    assert "... and 3 more in report.json" in text
