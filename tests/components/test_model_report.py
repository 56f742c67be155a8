import io

import numpy as np
import pytest
from PIL import Image

from bad_records import encode
from imgclf.components.evaluation import ModelMetrics
from imgclf.components.model_report import (
    CAPTION,
    COLUMNS,
    TILE,
    Mistake,
    contact_sheet,
    metric_rows,
    render_comparison,
)

CLASSES = ["cat", "dog"]


def _metrics(accuracy: float) -> ModelMetrics:
    return ModelMetrics(
        overall={"example_count": 40.0, "sparse_categorical_accuracy": accuracy},
        precision={0: accuracy, 1: 0.5},
        recall={0: 0.4, 1: accuracy},
        accuracy_by_label={0: 0.4, 1: accuracy},
    )


def test_rows_put_overall_metrics_first_then_each_class():
    rows = metric_rows(_metrics(0.8), _metrics(0.9), CLASSES)
    assert [name for name, _, _ in rows] == [
        "example_count",
        "sparse_categorical_accuracy",
        "balanced_accuracy",
        "precision[cat]",
        "recall[cat]",
        "precision[dog]",
        "recall[dog]",
    ]
    assert rows[1] == ("sparse_categorical_accuracy", 0.8, 0.9)
    # The mean of the classes' top-1 recalls (accuracy on each class's images).
    assert rows[2] == ("balanced_accuracy", pytest.approx(0.6), pytest.approx(0.65))


def test_a_held_back_model_s_comparison_names_the_deciding_threshold():
    rows = metric_rows(_metrics(0.8), _metrics(0.9), CLASSES)
    failure = "sparse_categorical_accuracy changed by -0.100 against the last blessed model"
    text = render_comparison(rows, True, False, [failure]).splitlines()
    assert text[0] == "Candidate model vs. the last blessed model"
    assert text[2].split() == ["example_count", "40", "40"]
    assert text[3].split() == ["sparse_categorical_accuracy", "0.800", "0.900", "-0.100"]
    assert text[-2:] == ["Blessed: no. Decided by:", f"  {failure}"]


def test_without_a_baseline_only_the_absolute_bounds_applied():
    text = render_comparison(metric_rows(_metrics(0.8), None, CLASSES), False, True, [])
    assert "No served model of these classes: only the absolute bounds applied." in text
    assert text.endswith("Blessed: yes, every threshold was met.")


def test_the_contact_sheet_is_a_grid_of_captioned_images():
    image = encode(np.zeros((20, 30, 3), np.uint8), "JPEG")
    mistakes = [(Mistake(f"r{i}", "cat", "dog", 0.9), image) for i in range(COLUMNS + 1)]
    sheet = contact_sheet(mistakes)
    assert sheet.size == (COLUMNS * TILE, 2 * (TILE + CAPTION))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).size == sheet.size


def test_an_undefined_precision_reads_n_a():
    never_predicted = ModelMetrics(overall={}, precision={0: float("nan")})
    text = render_comparison(metric_rows(never_predicted, _metrics(0.9), CLASSES), True, True, [])
    assert text.splitlines()[2].split() == ["precision[cat]", "n/a", "0.900", "n/a"]
