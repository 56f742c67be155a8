"""ServingHistory on a cluster: the model store's choices, and the history check, per run."""

import json
import shutil

import pytest
from tfx.types import standard_artifacts

from imgclf.components.serving_history import ServingHistory
from imgclf.modelstore.history import ServingHistoryLost
from imgclf.modelstore.serving_folder import PROVENANCE_FILE, SAVED_MODEL_FILE, record_push
from imgclf.settings.names import NO_VERSION

SHAPES = ["circle", "square"]


def _examples_of_span(span: int) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.span = span
    return examples


def test_on_a_cluster_the_component_stops_a_run_whose_serving_folder_lost_its_history(tmp_path):
    serving, records = tmp_path / "serving" / "model", str(tmp_path / "root" / "pushes")

    def history(allow_empty: bool) -> dict:
        return ServingHistory.test_call(
            examples=_examples_of_span(3),
            serving_model_dir=str(serving),
            push_records_dir=records,
            allow_empty_serving_folder=allow_empty,
            class_names=json.dumps(SHAPES),
            warm_start=True,
        )

    (serving / "2" / PROVENANCE_FILE).parent.mkdir(parents=True)
    (serving / "2" / PROVENANCE_FILE).write_text(json.dumps({"span": 2, "class_names": SHAPES}))
    (serving / "2" / SAVED_MODEL_FILE).touch()
    record_push(records, str(serving / "2"))
    assert history(False)["baseline_version"] == 2
    shutil.rmtree(serving)  # deleted, or a share mounted empty
    with pytest.raises(ServingHistoryLost, match=f"1 push.* to {serving} are recorded in"):
        history(False)
    assert history(True) == {
        "baseline_version": NO_VERSION,
        "warm_start_version": NO_VERSION,
        "previous_version": NO_VERSION,
    }
