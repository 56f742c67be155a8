"""The second model store: Vertex AI Model Registry, and an endpoint serving its newest version.

The serving folder (modelstore/serving_folder.py) stays the store every run
builds on; with `kubeflow.registry.model` set, each of its versions also
becomes a version of one Registry model, and, with `kubeflow.registry.endpoint`,
is rolled out to that endpoint. Through google-cloud-aiplatform, as Vertex AI
documents its Model Registry and endpoints:

- `Model.upload(parent_model=...)` makes a new version of the model named, not
  a new model per push (which TFX's own Vertex Pusher makes). The serving
  version N is the Registry version with alias `v<N>`; the version's labels
  hold its span and test accuracy (label values: lowercase letters, digits,
  `-` and `_`); its container is Vertex's prebuilt TensorFlow serving image,
  which serves the SavedModel's `serving_default` signature.
- `Model.deploy(endpoint, traffic_percentage=p)` gives the new deployed model
  p% of the endpoint's traffic and scales the others' down in proportion;
  Vertex finishes the deployment once the model's server answers its health
  checks. `Endpoint.undeploy` removes a deployed model (with no traffic left).

Pushes are registered in order and once: a run registers every serving
version the Registry lacks (one that failed to register, or a version pushed
before the registry was configured), so a failure here is mended by the next
run. The rollout: all at once (`canary_percent` 0), the new version takes all
traffic, must answer a prediction, and only then are the earlier ones
undeployed (if it does not answer, the traffic goes back and the new one is
undeployed); as a canary, it takes `canary_percent`, the version that served
most keeps the rest, and any older canary is undeployed.
"""

from __future__ import annotations

import base64
import re

from google.cloud import aiplatform

from imgclf.modelstore.serving_folder import read_provenance, versions
from imgclf.settings.cluster import ModelRegistry
from imgclf.trainer.export import EXAMPLES_INPUT

ALIAS_PREFIX = "v"
_LABEL_VALUE = re.compile(r"[^a-z0-9_-]")


class RolloutFailed(RuntimeError):
    """The new version did not answer on the endpoint; the earlier ones kept serving."""


def labels_of(provenance: dict | None) -> dict[str, str]:
    """The Registry labels of a serving version: its span and its test accuracy."""
    provenance = provenance or {}
    labels = {}
    if provenance.get("span") is not None:
        labels["span"] = str(provenance["span"])
    if provenance.get("test_accuracy") is not None:
        labels["test_accuracy"] = _LABEL_VALUE.sub("_", f"{provenance['test_accuracy']:.4f}")
    return labels


class VertexModelRegistry:
    """One Registry model whose versions are the serving folder's, and its endpoint."""

    def __init__(self, project: str, region: str, api_endpoint: str, settings: ModelRegistry):
        """`api_endpoint`: Google's regional one unless given; http(s):// URLs speak REST."""
        self.settings = settings
        aiplatform.init(
            project=project,
            location=region,
            api_endpoint=api_endpoint or None,
            api_transport="rest" if api_endpoint.startswith("http") else None,
        )

    def _model(self) -> aiplatform.Model | None:
        found = aiplatform.Model.list(filter=f'display_name="{self.settings.model}"')
        return found[0] if found else None

    def registered(self) -> dict[int, str]:
        """Serving version -> the Registry version's id, for the versions registered."""
        return self._versions_of(self._model())

    @staticmethod
    def _versions_of(model: aiplatform.Model | None) -> dict[int, str]:
        if model is None:
            return {}
        registered = {}
        for info in aiplatform.ModelRegistry(model.resource_name).list_versions():
            for alias in info.version_aliases:
                if alias.startswith(ALIAS_PREFIX) and alias[1:].isdigit():
                    registered[int(alias[1:])] = info.version_id
        return registered

    def register(self, serving_model_dir: str) -> list[int]:
        """Registers the serving versions the Registry lacks, in order; returns them."""
        model = self._model()
        done = self._versions_of(model)
        missing = [version for version in versions(serving_model_dir) if version not in done]
        for version in missing:
            version_dir = f"{serving_model_dir.rstrip('/')}/{version}"
            uploaded = aiplatform.Model.upload(
                display_name=self.settings.model,
                parent_model=model.resource_name if model else None,
                is_default_version=True,
                version_aliases=[f"{ALIAS_PREFIX}{version}"],
                version_description=f"serving version {version}",
                artifact_uri=version_dir,
                serving_container_image_uri=self.settings.serving_image,
                labels=labels_of(read_provenance(version_dir)),
            )
            # The first upload makes the model; the next ones are its versions.
            model = model or uploaded
        return missing

    def roll_out(self, version: int, example: bytes) -> str:
        """Deploys serving version `version` to the endpoint as the settings say; returns
        what was done. `example`: a serialized tf.Example the new version must answer."""
        settings = self.settings
        model = self._model()
        version_id = self._versions_of(model)[version]
        endpoint = self._endpoint()
        deployed = endpoint.list_models()
        before = dict(endpoint.traffic_split)
        if any(
            d.model == model.resource_name and d.model_version_id == version_id for d in deployed
        ):
            return f"version {version} already is on endpoint {settings.endpoint}"
        share = settings.canary_percent or 100
        new = aiplatform.Model(model.resource_name, version=version_id)
        new.deploy(
            endpoint=endpoint,
            deployed_model_display_name=f"{settings.model}-{ALIAS_PREFIX}{version}",
            traffic_percentage=share,
            machine_type=settings.machine_type,
            min_replica_count=settings.min_replicas,
            max_replica_count=settings.min_replicas,
        )
        new_id = next(d.id for d in endpoint.list_models() if d.model_version_id == version_id)
        if settings.canary_percent:
            stable = max(deployed, key=lambda d: endpoint.traffic_split.get(d.id, 0), default=None)
            for old in deployed:
                if stable is None or old.id != stable.id:
                    endpoint.undeploy(old.id)
            return f"version {version} takes {share}% of endpoint {settings.endpoint}"
        try:
            encoded = base64.b64encode(example).decode("ascii")
            endpoint.predict(instances=[{EXAMPLES_INPUT: {"b64": encoded}}])
        except Exception as error:
            # The traffic as it was, then the new one undeployed.
            endpoint.update(traffic_split={**before, new_id: 0} if before else None)
            endpoint.undeploy(new_id)
            raise RolloutFailed(
                f"Version {version} did not answer on endpoint {settings.endpoint} ({error}); "
                "the earlier versions serve as before."
            ) from None
        for old in deployed:
            endpoint.undeploy(old.id)
        return f"version {version} serves all of endpoint {settings.endpoint}"

    def _endpoint(self) -> aiplatform.Endpoint:
        found = aiplatform.Endpoint.list(filter=f'display_name="{self.settings.endpoint}"')
        return found[0] if found else aiplatform.Endpoint.create(self.settings.endpoint)
