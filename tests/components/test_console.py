"""What the consoles' viewers are handed: the types, the page's file, the metrics' shape."""

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

from imgclf.components.console import (
    DISPLAY_NAME,
    ConsoleClassificationMetrics,
    ConsoleMetrics,
    HtmlPage,
    page_copy,
    publish_confusion_matrix,
    publish_metrics,
    publish_page,
)
from imgclf.kubeflow.entrypoint import know_console_types


def executor_output_metadata(artifact) -> dict:
    """The metadata TFX's container reports for an output artifact, which the backend keeps."""
    runtime = kubeflow_v2_entrypoint_utils.to_runtime_artifact(artifact, {})
    return json_format.MessageToDict(runtime)["metadata"]


@pytest.mark.parametrize(
    ("kind", "title"),
    [
        (HtmlPage, "system.HTML"),
        (ConsoleMetrics, "system.Metrics"),
        (ConsoleClassificationMetrics, "system.ClassificationMetrics"),
    ],
)
def test_each_type_compiles_to_the_console_s_title(kind, title):
    schema = yaml.safe_load(compiler_utils.get_artifact_schema(kind))
    assert schema["title"] == title
    assert not kind.PROPERTIES


def test_the_page_is_the_file_at_its_uri_and_a_copy_a_browser_opens(tmp_path):
    page = HtmlPage()
    page.uri = str(tmp_path / "page" / "7" / "value")
    (tmp_path / "page" / "7").mkdir(parents=True)
    publish_page(page, "<!DOCTYPE html><p>hi</p>", "Model report")
    assert (tmp_path / "page" / "7" / "value").read_text() == "<!DOCTYPE html><p>hi</p>"
    assert page_copy(page.uri) == str(tmp_path / "page" / "7" / "page.html")
    assert (tmp_path / "page" / "7" / "page.html").read_text() == "<!DOCTYPE html><p>hi</p>"
    assert executor_output_metadata(page)[DISPLAY_NAME] == "Model report"


def test_the_confusion_matrix_and_figures_are_what_the_viewers_read():
    matrix = ConsoleClassificationMetrics()
    publish_confusion_matrix(matrix, ["cat", "dog"], [[3, 1], [0, 4]], "Confusion matrix")
    # As the KFP SDK's ClassificationMetrics.log_confusion_matrix writes it.
    assert executor_output_metadata(matrix) == {
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
            "rows": [{"row": [3.0, 1.0]}, {"row": [0.0, 4.0]}],
        },
        DISPLAY_NAME: "Confusion matrix",
    }

    figures = ConsoleMetrics()
    publish_metrics(figures, {"accuracy": 0.875, "blessed": 1}, "Model metrics")
    assert executor_output_metadata(figures) == {
        "accuracy": 0.875,
        "blessed": 1.0,
        DISPLAY_NAME: "Model metrics",
    }


def test_the_container_finds_the_console_types_by_their_titles(tmp_path, monkeypatch):
    # TFX's own map, restored after the test.
    monkeypatch.setattr(
        compiler_utils, "TITLE_TO_CLASS_PATH", dict(compiler_utils.TITLE_TO_CLASS_PATH)
    )
    artifact = pipeline_spec_pb2.RuntimeArtifact(uri=str(tmp_path / "page"))
    artifact.type.instance_schema = compiler_utils.get_artifact_schema(HtmlPage)
    listed = {"page": pipeline_spec_pb2.ArtifactList(artifacts=[artifact])}
    with pytest.raises(ImportError):  # TFX alone imports the title "system.HTML"
        kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(listed)
    know_console_types()
    [page] = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(listed)["page"]
    assert isinstance(page, HtmlPage)
