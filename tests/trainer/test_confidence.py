"""The interval every recorded accuracy carries."""

import pytest

from imgclf.trainer.confidence import accuracy_interval, measured, with_interval


def test_the_accuracy_interval_is_wilson_s_and_stays_within_0_and_1():
    low, high = accuracy_interval(0.9, 100)
    assert (low, high) == (pytest.approx(0.8256, abs=1e-4), pytest.approx(0.9448, abs=1e-4))
    # Every one of 16 right: far from certain, and never above 1.
    low, high = accuracy_interval(1.0, 16)
    assert low == pytest.approx(0.8064, abs=1e-4) and high == 1.0
    assert accuracy_interval(0.5, 0) == (0.0, 1.0)


def test_eighteen_validation_images_cannot_tell_0_95_from_1_00():
    """The issue's small dataset: 18 validation images, all right."""
    record = measured(1.0, 18)
    assert record["images"] == 18 and record["accuracy"] == 1.0
    low, high = record["interval_95"]
    assert low < 0.95 < high
    assert with_interval(1.0, 18) == f"1.000 (95% interval {low:.3f} to 1.000)"
