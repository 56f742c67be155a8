"""ServingHistory: what a run builds on, found in the model store when the run starts.

The choices are the model store's (modelstore/history.py): the baseline, the
warm start and the drift reference, and whether the serving folder lost the
versions recorded as pushed there. Every orchestrator (the local runner,
open-source KFP, which runs no resolver executors, and Vertex AI) finds the
same things with `find_versions`. The versions reach the Trainer, Evaluator
and DataGate as parameter values, so their cache keys change only when the
version they use does. They must be found when a run starts: locally, where
the pipeline is built for each run, they are found then (pipeline/pipeline.py)
and the history is checked before the run starts (pipeline/local_run.py); on
a cluster, where one compiled pipeline runs many times, this component does
both at the start of each run, its caching off (kubeflow/runner.py), before
anything is trained.
"""

import json
import os

from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from imgclf.components.example_gen import span_of
from imgclf.modelstore.history import check_history, find_versions
from imgclf.modelstore.serving_folder import lend_version


def served_model(serving_model_dir: str, version: int, scratch: str) -> standard_artifacts.Model:
    """A served version as a Model artifact (laid out as a Trainer's, its files lent by the
    model store: linked, not copied, where the file system allows) for TFX's executors."""
    model = standard_artifacts.Model()
    model.uri = os.path.join(scratch, f"served-{version}")
    lend_version(serving_model_dir, version, path_utils.serving_model_dir(model.uri))
    model.set_int_custom_property("version", version)
    return model


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
