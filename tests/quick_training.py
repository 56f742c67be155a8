"""What the end-to-end tests share: quick settings that still earn a blessing, and spans.

MobileNetV2 (alpha 0.35, 64 px) on the demo's pretrained backbone; without
augmentation, phase 1 trains on cached features, so its 15 epochs take seconds.
These tests exercise spans, retraining and orchestration on a few images a
class, whose validation share is a handful: every epoch runs (no early
stopping on a handful), and only the overall accuracy bar applies (the
per-class recall bar is tested in tests/components/test_evaluation.py).
"""

from imgclf.imagedata.records import LabelledImage, write_span
from imgclf.imagedata.sample import DEFAULT_CLASSES, sample_splits
from imgclf.settings.data import DataConfig

# The bound every decode takes: the configuration's default.
MAX_PIXELS = DataConfig().max_image_pixels

SPAN_PATTERNS = {
    "data.train_pattern": "span-{SPAN}/train/*",
    "data.eval_pattern": "span-{SPAN}/eval/*",
}


def small_run(backbone_weights: str) -> dict:
    """The end-to-end tests' network and schedule, on a few images a class."""
    return {
        "model.base_model": "MobileNetV2",
        "model.alpha": 0.35,
        "model.image_size": 64,
        "model.weights": backbone_weights,
        "training.batch_size": 16,
        "training.phase2_epochs": 3,
        "training.phase2_learning_rate": 3e-4,
        "training.fine_tune_layers": 100,
        "training.fine_tune_batch_norm": False,
        "training.early_stopping_patience": 0,
        "evaluation.min_accuracy": 0.35,
        "evaluation.min_class_recall": 0.0,
    }


def quick_training(backbone_weights: str) -> dict:
    return {
        **small_run(backbone_weights),
        "training.random_flip": False,
        "training.random_rotation": 0,
        "training.random_zoom": 0,
        "training.random_contrast": 0,
        "training.phase1_epochs": 15,
    }


def write_mislabelled_span(root: str, span: int) -> None:
    """New images whose train labels are all wrong: label i is written as i + 1."""
    splits = sample_splits(train_per_class=16, eval_per_class=16, seed=span)
    classes = len(DEFAULT_CLASSES)
    splits["train"] = (
        LabelledImage(r.image, (r.label + 1) % classes, r.id) for r in splits["train"]
    )
    write_span(root, span, DEFAULT_CLASSES, splits, num_shards=2)
