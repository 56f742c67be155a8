"""KServeRollout (open-source KFP, with kubeflow.kserve.name): the served version on KServe.

It runs after the Pusher and writes, through modelstore/kserve.py, the
InferenceService manifest for the serving folder's newest version
(`inferenceservice.yaml`, for the user's GitOps); with `kubeflow.kserve.apply`
it also applies it and follows the new revision until it is ready and
answers. It rolls out the newest version whether or not this run pushed it,
so a rollout that failed is mended by the next run; a version already rolled
out is left as it is. A failure fails this task only: the push to the serving
folder stands. What it did is a `system.Metrics` artifact the consoles show.
"""

import os

import tensorflow as tf
from tfx import types
from tfx import v1 as tfx
from tfx.types import standard_artifacts

from imgclf.components.console import ConsoleMetrics, publish_metrics
from imgclf.components.key_figure import record_key_figure
from imgclf.components.registry import an_example
from imgclf.modelstore.kserve import KServeRollout as Rollout
from imgclf.modelstore.kserve import inference_service, to_yaml
from imgclf.modelstore.serving_folder import versions
from imgclf.settings.cluster import KServe
from imgclf.settings.names import KSERVE_ROLLOUT

MANIFEST_FILE = "inferenceservice.yaml"
KSERVE_TITLE = "KServe rollout"


class KServeManifest(types.Artifact):
    """inferenceservice.yaml: the InferenceService serving the newest version."""

    TYPE_NAME = "imgclf.KServeManifest"


@tfx.dsl.components.component
def KServeRollout(
    pushed_model: tfx.dsl.components.InputArtifact[standard_artifacts.PushedModel],
    manifest: tfx.dsl.components.OutputArtifact[KServeManifest],
    metrics: tfx.dsl.components.OutputArtifact[ConsoleMetrics],
    serving_model_dir: tfx.dsl.components.Parameter[str],
    namespace: tfx.dsl.components.Parameter[str],
    kserve: tfx.dsl.components.Parameter[str],
) -> None:
    """`pushed_model`: the Pusher's (this runs after it); `namespace`: kubeflow.namespace;
    `kserve`: the kubeflow section's kserve settings, as JSON."""
    settings = KServe.model_validate_json(kserve)
    served = versions(serving_model_dir)
    if not served:
        publish_metrics(metrics, {"serving_version": 0, "applied": 0}, KSERVE_TITLE)
        record_key_figure(metrics, KSERVE_ROLLOUT, "no version is served yet: no manifest")
        return
    newest = served[-1]
    rollout = Rollout(settings, namespace) if settings.apply else None
    # Without a namespace, the manifest's is the one it is applied in.
    where = rollout.namespace if rollout else (settings.namespace or namespace)
    service = inference_service(
        settings, settings.storage_uri or serving_model_dir.rstrip("/"), newest, where
    )
    with tf.io.gfile.GFile(os.path.join(manifest.uri, MANIFEST_FILE), "w") as f:
        f.write(to_yaml(service))
    said = f"manifest for version {newest} written"
    if rollout:
        said = rollout.roll_out(service, an_example(f"{serving_model_dir.rstrip('/')}/{newest}"))
    publish_metrics(
        metrics, {"serving_version": newest, "applied": int(rollout is not None)}, KSERVE_TITLE
    )
    record_key_figure(metrics, KSERVE_ROLLOUT, said)
