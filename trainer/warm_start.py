"""Warm start: continue from the last blessed model instead of the pretrained base.

When new data arrives in spans, the blessed model already knows the task; the
new run starts from its weights (every layer: the fine-tuned base and the
head) and trains both phases on the new span. That is only possible when the
model has the same classes in the same order and the same network: otherwise
the run starts cold, from the pretrained base, and says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

from absl import logging

from imgclf.trainer.export import load_saved_model, read_summary
from imgclf.trainer.legacy_keras import keras


@dataclass(frozen=True)
class Start:
    warm: bool
    reason: str  # one sentence for the log, the training summary and `imgclf retrain`
    source: str | None = None  # the model whose weights were loaded

    def to_dict(self) -> dict:
        return asdict(self)


def class_change(before: list[str], now: list[str]) -> str:
    added = [name for name in now if name not in before]
    removed = [name for name in before if name not in now]
    parts = [f"added {', '.join(added)}"] if added else []
    parts += [f"removed {', '.join(removed)}"] if removed else []
    return "; ".join(parts) or "the same classes in another order"


def start_from(
    model: keras.Model,
    base_model_dir: str | None,
    class_names: list[str],
    enabled: bool,
    pretrained: bool = True,
) -> Start:
    """Loads the base model's weights into `model` when they fit; says which start it made.

    `pretrained` is False when the base has no pretrained weights (model.weights: none):
    a cold start then starts from random weights, and says so.
    """
    cold = "Cold start from " + (
        "the pretrained base" if pretrained else "random weights (model.weights is none)"
    )
    if not enabled:
        start = Start(False, f"{cold}: warm start is off.")
    elif base_model_dir is None:
        start = Start(False, f"{cold}: no blessed model of an earlier span.")
    else:
        start = _warm_start(model, base_model_dir, class_names, cold)
    logging.info("%s", start.reason)
    return start


def _warm_start(
    model: keras.Model, base_model_dir: str, class_names: list[str], cold: str
) -> Start:
    before = read_summary(base_model_dir)["class_names"]
    if before != class_names:
        return Start(
            False,
            f"{cold}: the classes changed since the blessed model "
            f"{base_model_dir} ({class_change(before, class_names)}), so its weights do not fit.",
        )
    load = partial(keras.models.load_model, compile=False)
    weights = load_saved_model(base_model_dir, load).get_weights()
    shapes = [w.shape for w in weights]
    if shapes != [tuple(w.shape) for w in model.weights]:
        return Start(
            False,
            f"{cold}: the blessed model {base_model_dir} is another "
            "network (its weights' shapes differ from this configuration's).",
        )
    model.set_weights(weights)
    return Start(True, f"Warm start from the blessed model {base_model_dir}.", base_model_dir)
