"""The second model store: Vertex AI Model Registry and an endpoint, through google-cloud-aiplatform
against the stand-in Vertex AI (tests/vertex_models.py), each deployed version a real server."""

import pytest

from imgclf.modelstore.vertex_registry import RolloutFailed, VertexModelRegistry, labels_of
from imgclf.settings.cluster import ModelRegistry
from vertex_models import (
    IMAGE,
    PARENT,
    PROJECT,
    REGION,
    an_example,
    push_version,
    serving_versions,
    vertex_models,
)


def registry(api_endpoint: str, **settings) -> VertexModelRegistry:
    settings = ModelRegistry(model="shapes", serving_image=IMAGE, **settings)
    return VertexModelRegistry(PROJECT, REGION, api_endpoint, settings)


@pytest.fixture
def vertex(monkeypatch):
    with vertex_models(monkeypatch) as served:
        yield served


@pytest.fixture
def serving(tmp_path):
    return serving_versions(tmp_path)


def test_each_serving_version_becomes_a_version_of_one_registry_model(vertex, serving, tmp_path):
    fake, api = vertex
    store = registry(api)
    assert store.register(str(serving)) == [1, 2]
    [(name, versions)] = fake.models.items()
    assert name.startswith(f"{PARENT}/models/")
    assert [v["versionAliases"] for v in versions] == [["v1"], ["default", "v2"]]
    assert [v["displayName"] for v in versions] == ["shapes", "shapes"]
    assert [v["artifactUri"] for v in versions] == [f"{serving}/1", f"{serving}/2"]
    assert versions[1]["labels"] == {"span": "2", "test_accuracy": "0_8750"}
    assert versions[1]["containerSpec"]["imageUri"] == IMAGE
    # Registered once: nothing again; a new push becomes version 3 of the same model.
    assert store.register(str(serving)) == []
    push_version(serving, 2, 3, 0.9, tmp_path)
    assert store.register(str(serving)) == [3]
    assert [v["versionId"] for v in fake.models[name]] == ["1", "2", "3"]
    assert store.registered() == {1: "1", 2: "2", 3: "3"}


def test_all_at_once_the_new_version_answers_before_the_old_one_goes(vertex, serving):
    fake, api = vertex
    store = registry(api, endpoint="shapes-endpoint")
    store.register(str(serving))
    assert store.roll_out(1, an_example()) == "version 1 serves all of endpoint shapes-endpoint"
    [served] = fake.endpoints.values()
    [first] = served.deployed.values()
    assert store.roll_out(2, an_example()) == "version 2 serves all of endpoint shapes-endpoint"
    [second] = served.deployed.values()
    assert (second.version_id, served.traffic) == ("2", {second.id: 100})
    assert second.answered == 1  # the check, answered by version 2's own server
    assert first.process.poll() is not None  # version 1's server is stopped
    assert store.roll_out(2, an_example()) == "version 2 already is on endpoint shapes-endpoint"


def test_a_canary_takes_its_share_and_the_served_version_keeps_the_rest(vertex, serving):
    fake, api = vertex
    registry(api, endpoint="shapes-endpoint").register(str(serving))
    registry(api, endpoint="shapes-endpoint").roll_out(1, an_example())
    canary = registry(api, endpoint="shapes-endpoint", canary_percent=25)
    assert canary.roll_out(2, an_example()) == "version 2 takes 25% of endpoint shapes-endpoint"
    [served] = fake.endpoints.values()
    by_version = {d.version_id: d.id for d in served.deployed.values()}
    assert served.traffic == {by_version["1"]: 75, by_version["2"]: 25}


def test_a_new_version_that_does_not_answer_leaves_the_old_one_serving(vertex, serving):
    fake, api = vertex
    store = registry(api, endpoint="shapes-endpoint")
    store.register(str(serving))
    store.roll_out(1, an_example())
    [model] = fake.models
    fake.silent_versions.add(f"{model}@2")
    with pytest.raises(RolloutFailed, match="Version 2 did not answer on endpoint shapes-endpoint"):
        store.roll_out(2, an_example())
    [served] = fake.endpoints.values()
    [left] = served.deployed.values()
    assert left.version_id == "1" and served.traffic == {left.id: 100}


def test_labels_are_what_vertex_accepts():
    assert labels_of({"span": 12, "test_accuracy": 0.98765}) == {
        "span": "12",
        "test_accuracy": "0_9877",
    }
    assert labels_of(None) == {}
