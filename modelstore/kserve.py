"""The serving folder on open-source clusters: one KServe InferenceService, a revision per version.

The serving folder (modelstore/serving_folder.py) stays the store every run
builds on; with `kubeflow.kserve.name` set, each pushed version is also
rolled out to an InferenceService, as a manifest for the user's GitOps and,
with `kubeflow.kserve.apply`, through the Kubernetes API. What KServe does
with what is sent here, from its source (kserve/kserve):

- config/runtimes/kserve-tensorflow-serving.yaml: the `tensorflow` model
  format runs TF Serving with `--model_name=<the InferenceService's name>` and
  `--model_base_path=/mnt/models`; TF Serving serves the newest numbered
  folder under its base path.
- pkg/apis/serving/v1beta1/predictor.go (`storageUris`, KServe 0.16 and
  newer, kserve/kserve#4702): the storage initializer copies each URI to its
  `mountPath`, here the one version folder to `/mnt/models/<version>`, so
  TF Serving serves exactly that version, not whatever is newest in the
  serving folder when a pod starts (inference_service_validation.go: not
  beside `model.storageUri`; mount paths absolute).
- The storage initializer is an init container: it copies the model once,
  when a pod starts. A new version is a new pod template (its URI and an
  annotation naming it), so a new revision.
- pkg/apis/serving/v1beta1/component.go: `canaryTrafficPercent` gives the
  newest revision that share and the last revision rolled out at 100% the
  rest; without it, the newest revision takes all traffic once it is ready.
- pkg/apis/serving/v1beta1/inference_service_status.go: the predictor's
  `latestCreatedRevision`, `latestReadyRevision`, `latestRolledoutRevision`
  and `traffic`; the `Ready` condition; the URLs (`address.url` inside the
  cluster, `url` outside).

The rollout: the InferenceService is created, or its spec replaced, and the
new revision must become ready within `ready_timeout_seconds` (TF Serving
loaded the version) and, when it takes all traffic, answer a prediction. If
it does not, the earlier spec is put back (its revision kept serving all the
while) and the rollout fails, saying why.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from imgclf.modelstore.kubernetes_api import connect, own_namespace
from imgclf.settings.cluster import KSERVE_STORAGE_PREFIXES, KServe
from imgclf.trainer.export import EXAMPLES_INPUT

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
# Changes with each pushed version, so the predictor's pods (and their copy) are made anew.
VERSION_ANNOTATION = "imgclf/serving-version"
MODEL_FORMAT = "tensorflow"
MODEL_BASE_PATH = "/mnt/models"  # TF Serving's, in KServe's runtime
POLL_SECONDS = 2.0
PREDICT_TIMEOUT_SECONDS = 60.0


class RolloutFailed(RuntimeError):
    """The new revision did not become ready or did not answer; the earlier one serves."""


def inference_service(settings: KServe, storage_uri: str, version: int, namespace: str) -> dict:
    storage_uri = storage_uri.rstrip("/")
    """The InferenceService serving version `version` of the serving folder at `storage_uri`; in
    `namespace`, or without one (the manifest is applied in the namespace given then)."""
    if not storage_uri.startswith(KSERVE_STORAGE_PREFIXES):
        raise ValueError(
            f"KServe's storage initializer cannot read the serving folder {storage_uri!r}: set "
            f"kubeflow.kserve.storage_uri to where it is ({', '.join(KSERVE_STORAGE_PREFIXES)})"
        )
    predictor: dict = {
        "annotations": {VERSION_ANNOTATION: str(version)},
        "minReplicas": settings.min_replicas,
        "model": {"modelFormat": {"name": MODEL_FORMAT}},
        "storageUris": [
            {"uri": f"{storage_uri}/{version}", "mountPath": f"{MODEL_BASE_PATH}/{version}"}
        ],
    }
    if settings.canary_percent:
        predictor["canaryTrafficPercent"] = settings.canary_percent
    if settings.service_account:
        predictor["serviceAccountName"] = settings.service_account
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": settings.name, **({"namespace": namespace} if namespace else {})},
        "spec": {"predictor": predictor},
    }


def to_yaml(manifest: dict) -> str:
    return yaml.safe_dump(manifest, sort_keys=False)


def served_version(service: dict | None) -> int | None:
    """The serving version an InferenceService's spec names; None without one."""
    annotations = (service or {}).get("spec", {}).get("predictor", {}).get("annotations", {})
    value = annotations.get(VERSION_ANNOTATION)
    return int(value) if value else None


class KServeRollout:
    """One InferenceService, through the Kubernetes API."""

    def __init__(self, settings: KServe, namespace: str = ""):
        connect()
        self.settings = settings
        self.namespace = settings.namespace or namespace or own_namespace()
        self.api = client.CustomObjectsApi()

    def __str__(self) -> str:
        return f"InferenceService {self.namespace}/{self.settings.name}"

    def get(self) -> dict | None:
        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.settings.name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def roll_out(self, manifest: dict, example: bytes) -> str:
        """Applies `manifest` and follows its revision; returns what was done. `example`: a
        serialized tf.Example the new version must answer when it takes all traffic."""
        before = self.get()
        version = served_version(manifest)
        if before is not None and served_version(before) == version:
            return f"version {version} already is {self}'s"
        if before is None:
            applied = self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, manifest
            )
        else:
            applied = self._replace_spec(before, manifest["spec"])
        try:
            status = self._wait_for_revision(applied["metadata"]["generation"])
            revision = status["components"]["predictor"]["latestReadyRevision"]
            if not self.settings.canary_percent:
                self._check_answers(status, example)
        except RolloutFailed as failure:
            if before is None:
                raise RolloutFailed(f"{failure} {self} serves nothing yet.") from None
            self._replace_spec(self.get(), before["spec"])
            raise RolloutFailed(
                f"{failure} Its spec is back to version {served_version(before)}, whose "
                "revision serves as before."
            ) from None
        if self.settings.canary_percent:
            return (
                f"version {version} takes {self.settings.canary_percent}% of {self}'s traffic "
                f"(revision {revision})"
            )
        return f"version {version} serves all of {self}'s traffic (revision {revision})"

    def _replace_spec(self, current: dict, spec: dict) -> dict:
        """PUT with the current resourceVersion: a concurrent change fails it (409)."""
        body = {**current, "spec": spec}
        return self.api.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.settings.name, body
        )

    def _wait_for_revision(self, generation: int) -> dict:
        """The status once the revision of `generation` is ready; RolloutFailed if it fails
        or the deadline passes first."""
        deadline = time.monotonic() + self.settings.ready_timeout_seconds
        while True:
            service = self.get() or {}
            status = service.get("status", {})
            predictor = status.get("components", {}).get("predictor", {})
            if status.get("observedGeneration", 0) >= generation:
                created = predictor.get("latestCreatedRevision")
                ready = _condition(status, "Ready")
                latest_ready = created and created == predictor.get("latestReadyRevision")
                if latest_ready and ready.get("status") == "True":
                    return status
                if ready.get("status") == "False" and ready.get("reason") == "RevisionFailed":
                    raise RolloutFailed(
                        f"Revision {created} of {self} failed: {ready.get('message', '')}."
                    )
            if time.monotonic() > deadline:
                raise RolloutFailed(
                    f"The new revision of {self} was not ready after "
                    f"{self.settings.ready_timeout_seconds:g} s "
                    f"(kubeflow.kserve.ready_timeout_seconds)."
                )
            time.sleep(POLL_SECONDS)

    def _check_answers(self, status: dict, example: bytes) -> None:
        """A prediction through the service's cluster address, as its clients send one (TF
        Serving's REST API: /v1/models/<name>:predict)."""
        base = (status.get("address") or {}).get("url") or status["url"]
        request = urllib.request.Request(
            f"{base}/v1/models/{self.settings.name}:predict",
            data=json.dumps(
                {"instances": [{EXAMPLES_INPUT: {"b64": base64.b64encode(example).decode()}}]}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=PREDICT_TIMEOUT_SECONDS) as answer:
                predictions = json.load(answer)["predictions"]
        except (OSError, ValueError, KeyError) as error:
            raise RolloutFailed(f"{self} did not answer a prediction ({error}).") from None
        if len(predictions) != 1:
            raise RolloutFailed(f"{self} answered {len(predictions)} predictions for 1 example.")


def _condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions", []) if c.get("type") == kind), {})
