"""The model report's web page, rendered from figures as a run records them, seen in a browser."""

import numpy as np

from bad_records import encode
from browser import look_at
from imgclf.components.model_page import ShownMistake, render_model_page
from imgclf.trainer.confidence import measured
from imgclf.trainer.export import TRANSFER
from imgclf.trainer.schedule import MONITOR

CLASSES = ["cat", "dog", "<fish & chips>"]


def _comparison(blessed: bool = True, in_train: int = 0) -> dict:
    return {
        "blessed": blessed,
        "decided_by": [] if blessed else ["sparse_categorical_accuracy fell by 0.050"],
        "has_baseline": True,
        "metrics": [
            {"metric": "example_count", "candidate": 60.0, "baseline": 60.0},
            {"metric": "sparse_categorical_accuracy", "candidate": 0.85, "baseline": 0.8},
            {"metric": "precision[dog]", "candidate": float("nan"), "baseline": 0.5},
        ],
        "accuracy_by_true_label": {"cat": 0.9, "dog": 0.75, "<fish & chips>": 0.9},
        "confusion_matrix": {"labels": CLASSES, "counts": [[18, 2, 0], [5, 15, 0], [1, 1, 18]]},
        "mistakes": 9,
        "sparse_categorical_accuracy": 0.85,
        "example_count": 60,
        "accuracy_interval": [0.739, 0.919],
        "in_train": in_train,
        "pushed_version": 3,
        "push": "Pushed as version 3: /serving/shapes/3",
    }


def test_eval_images_also_in_train_are_owned_up_to():
    text = render_model_page(_comparison(in_train=4), _training(), None, [])
    assert "never saw" not in text
    assert "on 60 images of the eval split, 4 of which are also in the train split" in text


def _training() -> dict:
    phase = {"learning_rate": 0.001, "max_epochs": 3, "best_epoch": 2}
    return {
        "base_model": "mobilenet_v2",
        "strategy": "MirroredStrategy",
        "num_replicas": 2,
        "phases": [
            {
                **phase,
                "name": "feature_extraction",
                "epochs": [1, 2, 3],
                "history": {"val_accuracy": [0.5, 0.7, 0.72], MONITOR: [0.5, 0.7, 0.72]},
            },
            {
                **phase,
                "name": "fine_tuning",
                "epochs": [4, 5],
                "history": {"val_accuracy": [0.8, 0.83], MONITOR: [0.8, 0.83]},
            },
        ],
        "history": {
            "epoch": [1, 2, 3, 4, 5],
            "accuracy": [0.4, 0.6, 0.7, 0.8, 0.9],
            "val_accuracy": [0.5, 0.7, 0.72, 0.8, 0.83],
            "loss": [1.2, 0.9, 0.7, 0.5, 0.4],
            "val_loss": [1.1, 0.8, 0.75, 0.6, 0.55],
        },
        "validation_examples": 100,
        "validation": measured(0.83, 100),
        "exported": TRANSFER,
        "scratch": {"validation_accuracy": 0.41, "epochs": 5},
    }


def _mistakes() -> list[ShownMistake]:
    pixels = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    return [
        ShownMistake("img-7", "dog", "cat", 0.97, encode(pixels, "JPEG"), "image/jpeg"),
        ShownMistake("img-3", "cat", "dog", 0.91, encode(pixels, "PNG"), "image/png"),
    ]


def test_the_page_says_what_a_person_needs_to_trust_the_model(tmp_path):
    text = render_model_page(_comparison(), _training(), "loaded in 1.2 s; passed", _mistakes())
    assert text.startswith("<!DOCTYPE html>")
    assert (
        "95% interval 0.739 to 0.919) on 60 images of the eval split, which training never saw"
        in text
    )
    assert "Pushed as version 3: /serving/shapes/3" in text
    # Class names are the user's: shown as text, never as markup.
    assert "&lt;fish &amp; chips&gt;" in text and "<fish" not in text
    # Each validation accuracy with what its 100 images can tell.
    assert "validation accuracy: 0.830 (95% interval 0.745 to 0.891) on 100 images." in text
    assert (
        "What transfer was worth: validation accuracy 0.830 (95% interval 0.745 to 0.891) "
        "from the pretrained weights, 0.410 (95% interval 0.319 to 0.508) from random"
    ) in text
    assert text.count("<svg") == 2  # accuracy and loss over both phases
    assert "loaded in 1.2 s; passed" in text


def test_a_browser_shows_every_section_chart_and_image(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        render_model_page(_comparison(False), _training(), "loaded in 1.2 s", _mistakes())
    )
    seen = look_at(str(page), screenshot="model_report_unit.png")
    assert seen.broken == []
    assert seen.charts == 2
    assert [image["loaded"] for image in seen.images] == [True, True]
    assert all(image["width"] == 24 for image in seen.images)
    for shown in (
        "Test accuracy 0.850 (95% interval 0.739 to 0.919) on 60 images",
        "Blessed: no.",
        "sparse_categorical_accuracy fell by 0.050",
        "<fish & chips>",
        "img-7: dog taken for cat (0.97)",
        "n/a",
    ):
        assert shown in seen.text


def test_without_mistakes_or_training_summary_the_page_still_renders(tmp_path):
    text = render_model_page({**_comparison(), "mistakes": 0}, None, None, [])
    assert "No test image was misclassified." in text
    assert "<svg" not in text and "Serving check" not in text
