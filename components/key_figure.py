"""Each component's one-line outcome, kept where a watcher of the run can read it.

The line goes on one of the component's output artifacts, as a custom property
(names.KEY_FIGURE_PROPERTY): TFX publishes it to ML Metadata with the artifact
when the execution completes, and `imgclf run` shows it beside the component's
time (pipeline/progress.py). It is logged too, for orchestrators whose screen
is a task's log (Kubeflow).
"""

from absl import logging
from tfx import types

from imgclf.settings.names import KEY_FIGURE_PROPERTY


def record_key_figure(artifact: types.Artifact, node: str, text: str) -> None:
    artifact.set_string_custom_property(KEY_FIGURE_PROPERTY, text)
    logging.info("%s: %s", node, text)
