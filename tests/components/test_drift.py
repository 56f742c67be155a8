import pytest

from imgclf.components.data_gate import decide
from imgclf.components.drift import SpanDrift, image_changes, share_distance

PASSING = {"failures": [], "warnings": []}


def _summary(min_side, max_side, formats, channels=None):
    return {
        "min_height": min_side,
        "max_height": max_side,
        "min_width": min_side,
        "max_width": max_side,
        "formats": formats,
        "channels": channels or {"3": sum(formats.values())},
    }


def test_share_distance_is_l_infinity_of_shares():
    assert share_distance({"png": 10}, {"png": 5}) == 0.0
    assert share_distance({"png": 10}, {"png": 5, "jpeg": 5}) == pytest.approx(0.5)
    assert share_distance({}, {}) == 0.0


def test_image_changes_are_relative_sizes_and_share_distances():
    changes = image_changes(_summary(64, 64, {"png": 8}), _summary(32, 128, {"jpeg": 8}))
    assert changes == {
        "min_height": 0.5,
        "max_height": 1.0,
        "min_width": 0.5,
        "max_width": 1.0,
        "formats": 1.0,
        "channels": 0.0,
    }


def test_drift_beyond_the_bounds_is_found_and_named():
    drift = SpanDrift(3, label_drift=0.3, image_changes={"max_width": 1.0, "formats": 0.1})
    assert drift.findings(max_label_drift=0.2, max_image_change=0.5) == [
        "train: label distribution differs from span 3's by 0.300 (L-infinity), more than 0.200",
        "train: images' max width changed by 1.000 from span 3's, more than 0.500",
    ]
    assert drift.findings(max_label_drift=0.5, max_image_change=2.0) == []


def test_span_drift_warns_or_fails_as_configured():
    found = ["train: label distribution differs from span 3's by 0.300"]
    warned, _ = decide([], [], PASSING, {}, 0.2, False, found, fail_on_span_drift=False)
    assert warned.passed and warned.warnings == found
    failed, _ = decide([], [], PASSING, {}, 0.2, False, found, fail_on_span_drift=True)
    assert not failed.passed and failed.failures == found
