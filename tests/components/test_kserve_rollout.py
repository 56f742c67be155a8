"""The KServeRollout component: the manifest of the newest served version, for GitOps, and with
`apply` its rollout to the stand-in KServe (tests/kserve_service.py)."""

import pytest
import yaml
from tfx.types import standard_artifacts

from imgclf.components.console import DISPLAY_NAME, ConsoleMetrics
from imgclf.components.kserve_rollout import MANIFEST_FILE, KServeManifest, KServeRollout
from imgclf.modelstore import kserve
from imgclf.modelstore.kserve import served_version
from imgclf.settings.cluster import KServe
from imgclf.settings.names import KEY_FIGURE_PROPERTY
from kserve_service import FakeKServe
from kubernetes_api import serving
from vertex_models import serving_versions


def _run(serving_dir, tmp_path, **settings) -> tuple[KServeManifest, ConsoleMetrics]:
    manifest, metrics = KServeManifest(), ConsoleMetrics()
    manifest.uri, metrics.uri = str(tmp_path / "manifest"), str(tmp_path / "metrics")
    (tmp_path / "manifest").mkdir(exist_ok=True)
    KServeRollout.test_call(
        pushed_model=standard_artifacts.PushedModel(),
        manifest=manifest,
        metrics=metrics,
        serving_model_dir=str(serving_dir),
        namespace="ml",
        kserve=KServe(name="shapes", **settings).model_dump_json(),
    )
    return manifest, metrics


def test_the_manifest_of_the_newest_version_is_written_and_nothing_applied(tmp_path):
    serving_dir = serving_versions(tmp_path)
    _, metrics = _run(serving_dir, tmp_path, storage_uri="gs://models/shapes")
    written = yaml.safe_load((tmp_path / "manifest" / MANIFEST_FILE).read_text())
    assert served_version(written) == 2
    assert written["metadata"] == {"name": "shapes", "namespace": "ml"}
    assert written["spec"]["predictor"]["storageUris"][0]["uri"] == "gs://models/shapes/2"
    assert metrics.get_string_custom_property(KEY_FIGURE_PROPERTY) == (
        "manifest for version 2 written"
    )
    assert metrics.get_float_custom_property("applied") == 0
    assert metrics.get_string_custom_property(DISPLAY_NAME) == "KServe rollout"


def test_with_no_version_served_there_is_no_manifest(tmp_path):
    (tmp_path / "serving").mkdir()
    _, metrics = _run(tmp_path / "serving", tmp_path)
    assert not (tmp_path / "manifest" / MANIFEST_FILE).exists()
    assert metrics.get_string_custom_property(KEY_FIGURE_PROPERTY) == (
        "no version is served yet: no manifest"
    )


@pytest.mark.slow
def test_with_apply_the_newest_version_is_rolled_out(tmp_path, monkeypatch):
    serving_dir = serving_versions(tmp_path)
    monkeypatch.setattr(kserve, "POLL_SECONDS", 0.1)
    with serving(FakeKServe(tmp_path), tmp_path, "ml") as fake:
        _, metrics = _run(serving_dir, tmp_path, storage_uri=f"file://{serving_dir}", apply=True)
        assert metrics.get_string_custom_property(KEY_FIGURE_PROPERTY) == (
            "version 2 serves all of InferenceService ml/shapes's traffic "
            "(revision shapes-predictor-00001)"
        )
        assert fake.running() == ["shapes-predictor-00001"]
        assert metrics.get_float_custom_property("applied") == 1
