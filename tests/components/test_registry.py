"""The ModelRegistry component: the serving folder's versions into the stand-in Vertex AI
(tests/vertex_models.py), the newest rolled out, what it did on its system.Metrics artifact."""

import pytest
from tfx.types import standard_artifacts

from imgclf.components.console import DISPLAY_NAME, ConsoleMetrics
from imgclf.components.registry import ModelRegistry, an_example
from imgclf.settings.cluster import ModelRegistry as RegistrySettings
from imgclf.settings.names import KEY_FIGURE_PROPERTY
from vertex_models import IMAGE, PROJECT, REGION, serving_versions, vertex_models


def _run(api: str, serving_dir, tmp_path, **settings) -> ConsoleMetrics:
    metrics = ConsoleMetrics()
    metrics.uri = str(tmp_path / "metrics")
    registry = RegistrySettings(model="shapes", serving_image=IMAGE, **settings)
    ModelRegistry.test_call(
        pushed_model=standard_artifacts.PushedModel(),
        metrics=metrics,
        serving_model_dir=str(serving_dir),
        project=PROJECT,
        region=REGION,
        api_endpoint=api,
        registry=registry.model_dump_json(),
    )
    return metrics


def test_the_served_versions_are_registered_and_the_newest_rolled_out(monkeypatch, tmp_path):
    serving_dir = serving_versions(tmp_path)
    with vertex_models(monkeypatch) as (fake, api):
        metrics = _run(api, serving_dir, tmp_path, endpoint="shapes-endpoint")
        assert metrics.get_string_custom_property(KEY_FIGURE_PROPERTY) == (
            "registered version(s) 1, 2 as shapes; version 2 serves all of endpoint shapes-endpoint"
        )
        assert metrics.get_float_custom_property("newest_registered") == 2
        assert metrics.get_string_custom_property(DISPLAY_NAME) == "Model registry"
        [served] = fake.endpoints.values()
        assert [d.version_id for d in served.deployed.values()] == ["2"]
        # A run with nothing new pushed: nothing registered, nothing rolled out.
        again = _run(api, serving_dir, tmp_path, endpoint="shapes-endpoint")
        assert again.get_string_custom_property(KEY_FIGURE_PROPERTY) == (
            "shapes already holds every served version"
        )


def test_a_version_without_a_warmup_request_is_not_rolled_out(tmp_path):
    with pytest.raises(ValueError, match=r"ships no warmup request .*serving\.warmup_images"):
        an_example(str(tmp_path))
