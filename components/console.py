"""The artifact types a pipeline console renders, and how a component fills them.

The KFP 2 UI picks a viewer by an artifact's type name (kubeflow/pipelines,
frontend/src/components/viewers/MetricsVisualizations.tsx), and shows only
artifacts with a `display_name` custom property:

- `system.HTML`: the file at the artifact's URI, in a frame;
- `system.Metrics`: a table of the other custom properties;
- `system.ClassificationMetrics`: `confusionMatrix`, `{annotationSpecs:
  [{displayName}], rows: [{row: [...]}]}`, square, as the KFP SDK writes it
  (kfp/dsl/types/artifact_types.py, ClassificationMetrics).

Vertex AI Pipelines renders the same types. TFX's KubeflowV2 compiler titles a
custom type by its TYPE_NAME (tfx/orchestration/kubeflow/v2/compiler_utils.py,
get_artifact_schema), and the backend keeps that title as the type's name, so
these classes compile to the console's own types; they declare no PROPERTIES,
which the compiler would check against the generic schema. In the container,
TFX finds an artifact's class from its title, first in TITLE_TO_CLASS_PATH:
CLASS_PATHS is what the entrypoint adds there (kubeflow/entrypoint.py).

The page is a value artifact: TFX makes its URI a file on every orchestrator
(tfx/orchestration/portable/outputs_utils.py), the file the console reads.
That file has no extension (locally it is `<artifact folder>/value`), so the
same page is also written beside it as `page.html`, which a browser opens
from disk.
"""

from __future__ import annotations

import os

from tfx.dsl.io import fileio
from tfx.types import artifact, value_artifact

DISPLAY_NAME = "display_name"
PAGE_COPY = "page.html"
CONFUSION_MATRIX = "confusionMatrix"


class HtmlPage(value_artifact.ValueArtifact):
    """One self-contained web page, the file at the URI."""

    TYPE_NAME = "system.HTML"

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


class ConsoleMetrics(artifact.Artifact):
    """Scalar figures, as custom properties."""

    TYPE_NAME = "system.Metrics"


class ConsoleClassificationMetrics(artifact.Artifact):
    """A confusion matrix, as the custom property `confusionMatrix`."""

    TYPE_NAME = "system.ClassificationMetrics"


CLASS_PATHS = {
    kind.TYPE_NAME: f"{kind.__module__}.{kind.__qualname__}"
    for kind in (HtmlPage, ConsoleMetrics, ConsoleClassificationMetrics)
}


def page_copy(page_uri: str) -> str:
    """Where the page is also written under a name a browser opens."""
    return os.path.join(os.path.dirname(page_uri), PAGE_COPY)


def publish_page(page: HtmlPage, text: str, display_name: str) -> None:
    page.value = text
    page.set_string_custom_property(DISPLAY_NAME, display_name)
    with fileio.open(page_copy(page.uri), "w") as f:
        f.write(text)


def publish_metrics(metrics: ConsoleMetrics, values: dict[str, float], display_name: str) -> None:
    for name, value in values.items():
        metrics.set_float_custom_property(name, float(value))
    metrics.set_string_custom_property(DISPLAY_NAME, display_name)


def publish_confusion_matrix(
    metrics: ConsoleClassificationMetrics,
    class_names: list[str],
    counts: list[list[int]],
    display_name: str,
) -> None:
    """`counts[true][predicted]`."""
    metrics.set_json_value_custom_property(
        CONFUSION_MATRIX,
        {
            "annotationSpecs": [{"displayName": name} for name in class_names],
            "rows": [{"row": [int(count) for count in row]} for row in counts],
        },
    )
    metrics.set_string_custom_property(DISPLAY_NAME, display_name)
