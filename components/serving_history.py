"""ServingHistory: what a run builds on, found in the serving folder rather than in ML Metadata.

Each version the Pusher writes records the span and classes it was trained on
and the profile of that data (components/pusher.py). From those records this
component finds, for the span the run reads, three served versions (NO_VERSION
when there is none):

- `baseline_version`: the newest version with the same classes, which the new
  model must beat (the Evaluator's baseline);
- `warm_start_version`: the newest version trained on an earlier span, which
  the Trainer starts from when warm start is on;
- `previous_version`: the newest version of an earlier span, whose data
  profile the DataGate measures the new span's drift against.

A serving folder that holds no version although pushes to it are recorded
(components/pusher.py: deleted, or a share mounted empty) stops the run
(`check_history`) unless evaluation.allow_empty_serving_folder says to serve
anew from version 1: locally before the run starts (pipeline/local_run.py),
on a cluster in this component, before anything is trained.

What is served is the source of truth: a lost or reset metadata store cannot
open the gate, and every orchestrator (the local runner, open-source KFP,
which runs no resolver executors, and Vertex AI) finds the same things with
`find_versions`. The versions reach the Trainer, Evaluator and DataGate as
parameter values, so their cache keys change only when the version they use
does. They must be found when a run starts: locally, where the pipeline is
built for each run, they are found then (pipeline/pipeline.py); on a cluster,
where one compiled pipeline runs many times, this component finds them at the
start of each run, its caching off (kubeflow/runner.py).
"""

import json
import os
from typing import Optional

from absl import logging
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from imgclf.components.example_gen import span_of
from imgclf.components.pusher import (
    FORMAT_SERVING,
    copy_tree,
    read_provenance,
    recorded_pushes,
    versions,
)
from imgclf.settings.names import BASELINE_VERSION, NO_VERSION, PREVIOUS_VERSION, WARM_START_VERSION


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


def served_model(serving_model_dir: str, version: int, scratch: str) -> standard_artifacts.Model:
    """A served version as a Model artifact (laid out as a Trainer's) for TFX's executors."""
    model = standard_artifacts.Model()
    model.uri = os.path.join(scratch, f"served-{version}")
    copy_tree(
        os.path.join(serving_model_dir, str(version)), os.path.join(model.uri, FORMAT_SERVING)
    )
    model.set_int_custom_property("version", version)
    return model


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


@tfx.dsl.components.component
def ServingHistory(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    push_records_dir: tfx.dsl.components.Parameter[str],
    allow_empty_serving_folder: tfx.dsl.components.Parameter[bool],
    class_names: tfx.dsl.components.Parameter[str],
    warm_start: tfx.dsl.components.Parameter[bool],
) -> tfx.dsl.components.OutputDict(
    baseline_version=int, warm_start_version=int, previous_version=int
):
    """`class_names`: this run's classes, a JSON list; `warm_start`: find a model to start from.

    `push_records_dir`, `allow_empty_serving_folder`: for `check_history`.
    """
    check_history(serving_model_dir, push_records_dir, bool(allow_empty_serving_folder))
    return find_versions(
        serving_model_dir, json.loads(class_names), span_of(examples), bool(warm_start)
    )
