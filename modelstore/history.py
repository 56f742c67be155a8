"""What a run builds on, found in the serving folder rather than in ML Metadata.

Each version the Pusher writes records the span and classes it was trained on
and the profile of that data (modelstore/serving_folder.py). From those
records, for the span a run reads, three served versions (NO_VERSION when
there is none):

- `baseline_version`: the newest version with the same classes, which the new
  model must beat (the Evaluator's baseline);
- `warm_start_version`: the newest version trained on an earlier span, which
  the Trainer starts from when warm start is on;
- `previous_version`: the newest version of an earlier span, whose data
  profile the DataGate measures the new span's drift against.

A serving folder that holds no version although pushes to it are recorded
(deleted, or a share mounted empty) stops the run (`check_history`) unless
evaluation.allow_empty_serving_folder says to serve anew from version 1. A
model whose classes differ from the newest served version's would break the
serving contract (`contract_change`).

What is served is the source of truth: a lost or reset metadata store cannot
open the gate, and every orchestrator finds the same things here.
"""

import os
from typing import Optional

from absl import logging

from imgclf.modelstore.serving_folder import read_provenance, recorded_pushes, versions
from imgclf.settings.names import BASELINE_VERSION, NO_VERSION, PREVIOUS_VERSION, WARM_START_VERSION
from imgclf.trainer.export import read_summary
from imgclf.trainer.warm_start import class_change


class ServingHistoryLost(ValueError):
    """Pushes to the serving folder are recorded, and it holds no version now."""


def check_history(serving_model_dir: str, push_records_dir: str, allow_empty: bool) -> None:
    """Stops a run whose serving folder lost the versions recorded as pushed there."""
    if allow_empty or versions(serving_model_dir):
        return
    pushed = recorded_pushes(push_records_dir, serving_model_dir)
    if pushed:
        raise ServingHistoryLost(
            f"{len(pushed)} push(es) to {serving_model_dir} are recorded in {push_records_dir} "
            f"(the last: {pushed[-1]}), but it holds no version now: deleted, or a share mounted "
            "empty? Nothing was trained. Restore it, or set "
            "evaluation.allow_empty_serving_folder to serve anew from version 1."
        )


def served_versions(serving_model_dir: str) -> list[tuple[int, dict]]:
    """(version, provenance) of each version that records one, newest first."""
    recorded = []
    for version in reversed(versions(serving_model_dir)):
        provenance = read_provenance(os.path.join(serving_model_dir, str(version)))
        if provenance is None:
            logging.warning(
                "Version %d in %s records no provenance (pushed by an older release, or by "
                "hand?): it is never a baseline or a warm start.",
                version,
                serving_model_dir,
            )
            continue
        recorded.append((version, provenance))
    return recorded


def baseline_version(recorded: list[tuple[int, dict]], class_names: list[str]) -> Optional[int]:
    """The newest version with these classes: one to compare with, metric by metric."""
    return next((v for v, p in recorded if p["class_names"] == class_names), None)


def earlier_span_version(recorded: list[tuple[int, dict]], span: int) -> Optional[int]:
    """The newest version trained on a span before `span`."""
    return next((v for v, p in recorded if p["span"] is not None and p["span"] < span), None)


def find_versions(
    serving_model_dir: str, class_names: list[str], span: int, warm_start: bool
) -> dict[str, int]:
    """The versions a run of `span` with these classes builds on (NO_VERSION: none)."""
    recorded = served_versions(serving_model_dir)
    baseline = baseline_version(recorded, class_names)
    earlier = earlier_span_version(recorded, span)
    logging.info(
        "Span %d; served versions %s: baseline %s, earlier span's version %s.",
        span,
        [version for version, _ in recorded],
        baseline,
        earlier,
    )
    return {
        BASELINE_VERSION: _or_none(baseline),
        WARM_START_VERSION: _or_none(earlier if warm_start else None),
        PREVIOUS_VERSION: _or_none(earlier),
    }


def _or_none(version: Optional[int]) -> int:
    return NO_VERSION if version is None else version


def contract_change(model_dir: str, serving_model_dir: str) -> str | None:
    """How the model's classes differ from the newest served version's, or None.

    The classes are the serving contract: a client reads `class_ids` by the names it
    knows. A served version that records no classes (pushed by hand) binds nothing.
    """
    served = versions(serving_model_dir)
    if not served:
        return None
    provenance = read_provenance(os.path.join(serving_model_dir, str(served[-1])))
    classes = read_summary(model_dir)["class_names"]
    if provenance is None or provenance["class_names"] == classes:
        return None
    change = class_change(provenance["class_names"], classes)
    return f"its classes differ from served version {served[-1]}'s ({change})"
