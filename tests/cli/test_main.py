"""The command line's own behaviour: exit statuses and what it prints."""

import json

import pytest

from imgclf.cli.main import SCRATCH_BASELINE_FILE, main
from imgclf.settings.config import load_config


def test_scratch_baseline_prints_its_figure_and_exits_0(tmp_path, capsys):
    # A baseline measured earlier with these settings is reported, not trained again.
    config = load_config({"output_dir": str(tmp_path)})
    measured = {
        "settings": config.trainer_config().model_dump(mode="json"),
        "eval_accuracy": 0.4375,
        "epochs": 10,
        "seconds": 12.0,
    }
    (tmp_path / SCRATCH_BASELINE_FILE).write_text(json.dumps(measured))
    assert main(["scratch-baseline", "--set", f"output_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("From scratch: eval accuracy 0.438 after 10 epochs (12s)")


def test_a_misspelt_setting_section_is_named_with_exit_2(capsys):
    assert main(["report", "--set", "trainig.phase1_epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "$IMGCLF_TRAINIG__PHASE1_EPOCHS: 'trainig' is not a configuration section" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("top_k", ["0", "-1"])
def test_predict_refuses_a_top_k_below_one(top_k, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["predict", str(tmp_path), "image.png", "--top-k", top_k])
    assert exited.value.code == 2
    assert f"argument --top-k: must be 1 or more, got {top_k}" in capsys.readouterr().err
