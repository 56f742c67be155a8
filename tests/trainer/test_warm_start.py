import numpy as np
import pytest

from damaged import half_copied
from imgclf.imagedata.sample import DEFAULT_CLASSES
from imgclf.trainer.export import UnloadableModelError, export_model
from imgclf.trainer.model import build_model
from imgclf.trainer.warm_start import class_change, start_from
from quick_training import MAX_PIXELS

CLASSES = list(DEFAULT_CLASSES)


@pytest.fixture(scope="module")
def blessed(tiny_backbone, tmp_path_factory):
    """An exported model whose every weight differs from a freshly built one's."""
    model = build_model(tiny_backbone, num_classes=len(CLASSES), batch_norm_learns=False)
    model.set_weights([w + 0.5 for w in model.get_weights()])
    export_dir = str(tmp_path_factory.mktemp("blessed") / "Format-Serving")
    summary = {"class_names": CLASSES, "phases": []}
    export_model(model, export_dir, CLASSES, tiny_backbone.image_size, "image", summary, MAX_PIXELS)
    return export_dir, model.get_weights()


def test_a_warm_start_loads_every_weight_of_the_blessed_model(tiny_backbone, blessed):
    export_dir, weights = blessed
    model = build_model(tiny_backbone, num_classes=len(CLASSES), batch_norm_learns=False)
    start = start_from(model, export_dir, CLASSES, enabled=True)
    assert start.warm and start.source == export_dir
    assert start.reason == f"Warm start from the blessed model {export_dir}."
    for loaded, expected in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(loaded, expected)


def test_new_classes_start_cold_and_keep_the_pretrained_weights(tiny_backbone, blessed):
    export_dir, _ = blessed
    model = build_model(tiny_backbone, num_classes=len(CLASSES) + 1, batch_norm_learns=False)
    pretrained = model.get_weights()
    start = start_from(model, export_dir, [*CLASSES, "ring"], enabled=True)
    assert not start.warm and start.source is None
    assert start.reason == (
        "Cold start from the pretrained base: the classes changed since the blessed model "
        f"{export_dir} (added ring), so its weights do not fit."
    )
    for kept, expected in zip(model.get_weights(), pretrained, strict=True):
        np.testing.assert_array_equal(kept, expected)


def test_another_network_starts_cold(tiny_backbone, blessed):
    export_dir, _ = blessed
    wider = tiny_backbone.model_copy(update={"head_units": 8, "weights": "none"})
    start = start_from(
        build_model(wider, len(CLASSES), batch_norm_learns=False), export_dir, CLASSES, enabled=True
    )
    assert not start.warm
    assert "is another network" in start.reason


def test_no_blessed_model_or_warm_start_off_say_so(tiny_backbone, blessed):
    model = build_model(tiny_backbone, num_classes=len(CLASSES), batch_norm_learns=False)
    assert start_from(model, None, CLASSES, enabled=True).reason.endswith(
        "no blessed model of an earlier span."
    )
    off = start_from(model, blessed[0], CLASSES, enabled=False)
    assert not off.warm and off.reason.endswith("warm start is off.")


def test_a_cold_start_without_pretrained_weights_does_not_claim_a_pretrained_base(tiny_backbone):
    model = build_model(tiny_backbone, num_classes=len(CLASSES), batch_norm_learns=False)
    start = start_from(model, None, CLASSES, enabled=True, pretrained=False)
    assert start.reason == (
        "Cold start from random weights (model.weights is none): "
        "no blessed model of an earlier span."
    )


def test_class_changes_are_named():
    assert class_change(["a", "b"], ["a", "b", "c"]) == "added c"
    assert class_change(["a", "b", "c"], ["a", "c"]) == "removed b"
    assert class_change(["a", "b"], ["b", "a"]) == "the same classes in another order"


def test_a_damaged_blessed_model_is_named_not_started_from(tiny_backbone, blessed, tmp_path):
    export_dir, _ = blessed
    damaged = half_copied(export_dir, str(tmp_path / "2"))
    model = build_model(tiny_backbone, num_classes=len(CLASSES), batch_norm_learns=False)
    with pytest.raises(UnloadableModelError, match=f"The model in {damaged} cannot be loaded"):
        start_from(model, damaged, CLASSES, enabled=True)
