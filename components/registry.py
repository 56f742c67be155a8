"""ModelRegistry (Vertex AI, with kubeflow.registry.model): the served versions in the Registry.

It runs after the Pusher and registers, through modelstore/vertex_registry.py,
every serving version Vertex AI Model Registry lacks, in order, as versions
of one model; with an endpoint configured, it rolls out the newest version
the run registered. A failure fails this task only: the push to the serving
folder stands, and the next run registers what is missing. What it did is a
`system.Metrics` artifact the consoles show (components/console.py).
"""

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from imgclf.components.console import ConsoleMetrics, publish_metrics
from imgclf.components.key_figure import record_key_figure
from imgclf.settings.cluster import ModelRegistry as RegistrySettings
from imgclf.settings.names import MODEL_REGISTRY
from imgclf.trainer.export import EXAMPLES_INPUT, SERVING_DEFAULT
from imgclf.trainer.warmup import read_warmup_requests

REGISTRY_TITLE = "Model registry"


def an_example(version_dir: str) -> bytes:
    """A serialized tf.Example the version ships as a warmup request, to check it answers."""
    for request in read_warmup_requests(version_dir):
        if (request.model_spec.signature_name or SERVING_DEFAULT) == SERVING_DEFAULT:
            return tf.make_ndarray(request.inputs[EXAMPLES_INPUT]).flat[0]
    raise ValueError(
        f"{version_dir} ships no warmup request (serving.warmup_images is 0): there is no "
        "example to check on the endpoint that it answers, so it is not rolled out"
    )


@tfx.dsl.components.component
def ModelRegistry(
    pushed_model: tfx.dsl.components.InputArtifact[standard_artifacts.PushedModel],
    metrics: tfx.dsl.components.OutputArtifact[ConsoleMetrics],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    project: tfx.dsl.components.Parameter[str],
    region: tfx.dsl.components.Parameter[str],
    api_endpoint: tfx.dsl.components.Parameter[str],
    registry: tfx.dsl.components.Parameter[str],
) -> None:
    """`pushed_model`: the Pusher's (this runs after it); `registry`: the kubeflow section's
    registry settings, as JSON."""
    # Google's client library loads here, in the task, not wherever the pipeline is built.
    from imgclf.modelstore.vertex_registry import VertexModelRegistry

    settings = RegistrySettings.model_validate_json(registry)
    store = VertexModelRegistry(project, region, api_endpoint, settings)
    registered = store.register(serving_model_dir)
    said = (
        f"registered version(s) {', '.join(map(str, registered))} as {settings.model}"
        if registered
        else f"{settings.model} already holds every served version"
    )
    if registered and settings.endpoint:
        newest = registered[-1]
        said += "; " + store.roll_out(newest, an_example(f"{serving_model_dir}/{newest}"))
    figures = {"registered_versions": len(registered)}
    if registered:
        figures["newest_registered"] = registered[-1]
    publish_metrics(metrics, figures, REGISTRY_TITLE)
    record_key_figure(metrics, MODEL_REGISTRY, said)
