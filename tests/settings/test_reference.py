from pathlib import Path

from imgclf.settings.config import PipelineConfig
from imgclf.settings.reference import settings_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_the_settings_reference_is_up_to_date():
    assert REFERENCE.read_text() == settings_reference(), (
        "docs/settings.md is out of date: python -m imgclf.settings.reference > docs/settings.md"
    )


def test_the_reference_names_every_setting_with_its_default():
    text = settings_reference()
    assert "| `training.phase1_epochs` | `int` | `5` |" in text
    assert "| `evaluation.allow_empty_serving_folder` | `bool` | `false` | Run although" in text
    assert "`kubeflow.trainer.workers`" in text
    for section in PipelineConfig.model_fields:
        assert f"`{section}" in text
