"""The InferenceService manifest, checked against KServe's own models, and the rollout of each
version through the stand-in KServe (tests/kserve_service.py), whose revisions are real
servers of real versions that each answer one class."""

import base64
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from imgclf.modelstore import kserve
from imgclf.modelstore.kserve import (
    VERSION_ANNOTATION,
    KServeRollout,
    RolloutFailed,
    inference_service,
    served_version,
)
from imgclf.settings.cluster import KServe
from imgclf.trainer.export import EXAMPLES_INPUT
from kserve_service import FakeKServe
from kubernetes_api import serving
from vertex_models import an_example, push_version

REPO = Path(__file__).resolve().parents[2]
# The Makefile's venv with the `kserve` package, which cannot install beside the stack.
KSERVE_PYTHON = os.environ.get("KSERVE_PYTHON", str(REPO / ".venv-kserve" / "bin" / "python"))
NAMESPACE = "ml"


def kserve_verdict(manifest: dict) -> str:
    """What KServe's models say of `manifest`: 'valid', or the field at fault."""
    if not os.path.exists(KSERVE_PYTHON):
        pytest.fail(f"{KSERVE_PYTHON} is missing: `make test` installs it (the kserve venv)")
    checked = subprocess.run(
        [KSERVE_PYTHON, str(REPO / "tests" / "kserve_schema.py")],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode in (0, 1), checked.stderr
    return checked.stdout.strip()


def test_the_manifest_is_one_kserve_knows():
    settings = KServe(name="shapes", canary_percent=20, service_account="models-reader")
    manifest = inference_service(settings, "gs://bucket/serving/shapes/", 3, NAMESPACE)
    predictor = manifest["spec"]["predictor"]
    assert manifest["metadata"] == {"name": "shapes", "namespace": NAMESPACE}
    assert predictor["model"] == {"modelFormat": {"name": "tensorflow"}}
    # Exactly version 3, where TF Serving looks for versions.
    assert predictor["storageUris"] == [
        {"uri": "gs://bucket/serving/shapes/3", "mountPath": "/mnt/models/3"}
    ]
    assert predictor["annotations"] == {VERSION_ANNOTATION: "3"}
    assert (predictor["canaryTrafficPercent"], predictor["serviceAccountName"]) == (
        20,
        "models-reader",
    )
    assert kserve_verdict(manifest) == "valid"
    # The check itself: a field KServe does not know, and one of the wrong type, are refused.
    predictor["canaryTrafficPercentage"] = 20
    assert kserve_verdict(manifest) == (
        "InferenceService.spec.predictor: V1beta1PredictorSpec has no field "
        "'canaryTrafficPercentage'"
    )
    del predictor["canaryTrafficPercentage"]
    predictor["minReplicas"] = "1"
    assert "minReplicas: int expected" in kserve_verdict(manifest)


def test_all_at_once_and_without_a_namespace_the_manifest_says_only_what_it_must():
    manifest = inference_service(KServe(name="shapes"), "s3://models/shapes", 1, "")
    assert manifest["metadata"] == {"name": "shapes"}
    assert set(manifest["spec"]["predictor"]) == {
        "annotations",
        "minReplicas",
        "model",
        "storageUris",
    }
    assert kserve_verdict(manifest) == "valid"


def test_a_folder_kserve_cannot_read_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match=r"cannot read the serving folder '/srv/m'.*storage_uri"):
        inference_service(KServe(name="shapes"), "/srv/m", 1, NAMESPACE)
    with pytest.raises(ValueError, match="not a DNS label"):
        KServe(name="Shapes_1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kserve")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kserve, "POLL_SECONDS", 0.1)
        with serving(FakeKServe(folder), folder, NAMESPACE) as fake:
            yield fake, folder


def _predicted_classes(fake: FakeKServe, name: str, times: int) -> list[int]:
    """The class each of `times` requests through the service's URL got."""
    url = f"{fake.router.url}/v1/models/{name}:predict"
    example = base64.b64encode(an_example()).decode()
    classes = []
    for _ in range(times):
        body = json.dumps({"instances": [{EXAMPLES_INPUT: {"b64": example}}]}).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            [prediction] = json.load(answer)["predictions"]
        classes.append(prediction["class_ids"])
    return classes


def _roll_out(serving_dir: Path, version: int, **settings) -> str:
    config = KServe(name="shapes", ready_timeout_seconds=120, **settings)
    manifest = inference_service(config, f"file://{serving_dir}", version, NAMESPACE)
    return KServeRollout(config).roll_out(manifest, an_example())


@pytest.mark.slow
def test_each_version_becomes_a_revision_that_takes_the_traffic(cluster):
    fake, folder = cluster
    serving_dir = folder / "serving" / "shapes"
    push_version(serving_dir, 0, 1, 0.8, folder)
    assert _roll_out(serving_dir, 1) == (
        "version 1 serves all of InferenceService ml/shapes's traffic "
        "(revision shapes-predictor-00001)"
    )
    assert _predicted_classes(fake, "shapes", 2) == [0, 0]

    push_version(serving_dir, 1, 2, 0.9, folder)
    assert "version 2 serves all" in _roll_out(serving_dir, 2)
    assert fake.traffic(NAMESPACE, "shapes") == {"shapes-predictor-00002": 100}
    assert fake.running() == ["shapes-predictor-00002"]  # version 1's scaled to zero
    assert _predicted_classes(fake, "shapes", 2) == [1, 1]
    assert _roll_out(serving_dir, 2) == "version 2 already is InferenceService ml/shapes's"

    # A canary: a quarter of the requests to version 3, the rest to version 2.
    push_version(serving_dir, 2, 3, 0.95, folder)
    assert _roll_out(serving_dir, 3, canary_percent=25) == (
        "version 3 takes 25% of InferenceService ml/shapes's traffic "
        "(revision shapes-predictor-00003)"
    )
    assert fake.traffic(NAMESPACE, "shapes") == {
        "shapes-predictor-00003": 25,
        "shapes-predictor-00002": 75,
    }
    assert sorted(_predicted_classes(fake, "shapes", 4)) == [1, 1, 1, 2]

    # A version that does not load: the spec goes back, the earlier revisions kept serving.
    broken = serving_dir / "4"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    with pytest.raises(RolloutFailed) as failed:
        _roll_out(serving_dir, 4)
    message = str(failed.value)
    assert message.startswith(
        "Revision shapes-predictor-00004 of InferenceService ml/shapes failed: Revision "
        '"shapes-predictor-00004" failed with message: '
    )
    assert message.endswith("Its spec is back to version 3, whose revision serves as before.")
    assert served_version(fake.services[(NAMESPACE, "shapes")]) == 3
    assert sorted(_predicted_classes(fake, "shapes", 4)) == [1, 1, 1, 2]
