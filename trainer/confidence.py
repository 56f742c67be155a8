"""How much a measured accuracy tells: its count and its 95% interval (Wilson's).

An accuracy on 18 validation images that reads 1.000 is also what a model that is
right 85% of the time scores often enough; every accuracy the Trainer records and
the reports show carries the count it was measured on and this interval, so that
a reader sees what the count can and cannot tell apart.
"""

from __future__ import annotations

import math

Z_95 = 1.96


def accuracy_interval(accuracy: float, examples: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of an accuracy measured on `examples` images.

    Unlike accuracy +- z * standard error, it stays within [0, 1] and is honest near 1,
    where small test sets put most models.
    """
    if examples <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / examples
    centre = (accuracy + z * z / (2 * examples)) / denominator
    half = (
        z * math.sqrt(accuracy * (1 - accuracy) / examples + z * z / (4 * examples * examples))
    ) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def measured(accuracy: float, examples: int) -> dict:
    """An accuracy as training_summary.json records it: with its count and interval."""
    low, high = accuracy_interval(accuracy, examples)
    return {"accuracy": accuracy, "images": examples, "interval_95": [low, high]}


def with_interval(accuracy: float, examples: int) -> str:
    """'0.944 (95% interval 0.742 to 0.990)'."""
    low, high = accuracy_interval(accuracy, examples)
    return f"{accuracy:.3f} (95% interval {low:.3f} to {high:.3f})"


def transfer_worth(transfer: float, scratch: dict, images: int, scratch_exported: bool) -> str:
    """Both validation accuracies of training.compare_scratch, and which model is exported."""
    said = (
        f"validation accuracy {with_interval(transfer, images)} from the pretrained weights, "
        f"{with_interval(scratch['validation_accuracy'], images)} from random weights at the "
        f"same budget ({scratch['epochs']} epochs, {images} validation images)"
    )
    if not scratch_exported:
        return said + "; the model from the pretrained weights is exported"
    ahead = scratch["validation_accuracy"] - transfer
    better = f"by {ahead:.3f}" if ahead > 0 else "(as accurate, with a lower validation loss)"
    return said + f"; the model from random weights did better {better}, and is exported instead"
