"""The command line's own behaviour: exit statuses and what it prints."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tf_keras.src.utils import data_utils

from imgclf.cli.main import main
from imgclf.cli.models import SCRATCH_BASELINE_FILE
from imgclf.cli.startup import without_startup_noise
from imgclf.imagedata.sample import write_sample_span
from imgclf.modelstore.serving_folder import record_push
from imgclf.pipeline.lock import EXIT_BUSY, exclusive, holder
from imgclf.settings.config import load_config
from quick_training import SPAN_PATTERNS


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


def test_a_bad_value_given_with_set_is_reported_as_the_flag(capsys):
    assert main(["report", "--set", "training.phase1_epochs=many"]) == 2
    err = capsys.readouterr().err
    assert "training.phase1_epochs: " in err
    assert "(from --set training.phase1_epochs)" in err
    assert "$IMGCLF_" not in err


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


def test_retrain_refuses_weights_of_another_architecture_before_anything_runs(
    sample_data, tiny_backbone, tmp_path, capsys
):
    settings = {
        "data.root": sample_data,
        "output_dir": str(tmp_path),
        "model.weights": tiny_backbone.weights,  # MobileNetV2 at alpha 0.35
        "model.base_model": "MobileNetV2",
        "model.alpha": 1.0,
        "model.image_size": 32,
    }
    assignments = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]
    assert main(["retrain", *assignments]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"imgclf retrain: model.weights file '{tiny_backbone.weights}' does not hold weights "
        "for MobileNetV2"
    )
    assert "Traceback" not in err
    assert not os.path.exists(load_config({"output_dir": str(tmp_path)}).metadata_path)


def test_retrain_names_a_data_root_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "photos"
    assert (
        main(["retrain", "--set", f"data.root={missing}", "--set", f"output_dir={tmp_path}"]) == 2
    )
    assert capsys.readouterr().err == (
        f"imgclf retrain: The data root {missing} does not exist (setting data.root).\n"
    )


def test_run_says_how_to_place_imagenet_weights_it_cannot_fetch_before_anything_runs(
    sample_data, tmp_path, monkeypatch, capsys
):
    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name unknown")

    monkeypatch.setattr(data_utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    settings = {"data.root": sample_data, "output_dir": str(tmp_path), "model.weights": "imagenet"}
    assignments = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]
    assert main(["run", *assignments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgclf run: Could not download the ImageNet weights of ")
    assert f"place it in {tmp_path / 'keras'}/models/" in err
    assert "set model.weights to the path of a weights file" in err
    assert not os.path.exists(load_config({"output_dir": str(tmp_path)}).tfx_home)


def test_a_command_that_loads_tensorflow_shows_none_of_its_start_up_chatter(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "imgclf.cli.main", "report", "--set", f"output_dir={tmp_path}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    metadata = tmp_path / "metadata" / "image-classifier.db"
    assert done.stderr == (f"imgclf report: No ML Metadata database at '{metadata}': no run yet?\n")
    assert done.returncode == 2


def test_only_the_known_start_up_chatter_is_filtered():
    text = (
        "2026-11-24 05:37:57.527454: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:"
        "479] Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT "
        "when one has already been registered\n"
        "2026-11-24 05:37:57.336435: I external/local_tsl/tsl/cuda/cudart_stub.cc:32] Could not "
        "find cuda drivers on your machine, GPU will not be used.\n"
        "2026-11-24 05:37:59.268409: E tensorflow/core/framework/op_kernel.cc:1] Out of memory\n"
    )
    assert without_startup_noise(text) == (
        "2026-11-24 05:37:59.268409: E tensorflow/core/framework/op_kernel.cc:1] Out of memory\n"
    )


def test_convert_folder_onto_its_own_photos_is_one_line_and_exit_2(tmp_path, capsys):
    from PIL import Image

    photos = tmp_path / "proj" / "photos"
    for split, name in (("train", "cats"), ("train", "dogs"), ("eval", "cats"), ("eval", "dogs")):
        (photos / split / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(photos / split / name / "a.png")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    for out in (photos, tmp_path / "proj"):
        code = main(["convert-folder", str(photos), "--out", str(out), "--overwrite"])
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("imgclf convert-folder: The output folder")
        assert err.count("\n") == 1 and "Traceback" not in err
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_run_while_another_run_holds_the_lock_answers_75_in_one_line(tmp_path, capsys):
    config = load_config({"output_dir": str(tmp_path)})
    with exclusive(config, wait=False):  # as a retrain in progress holds it
        assert main(["run", "--set", f"output_dir={tmp_path}"]) == EXIT_BUSY
    err = capsys.readouterr().err
    assert err == (
        f"imgclf run: another run of {config.pipeline_name} is in progress (pid {os.getpid()} "
        f"on {socket.gethostname()}, since {err.split(', since ')[1].split(')')[0]}); this one "
        "did nothing. Run it again when that one has ended.\n"
    )
    assert not os.path.exists(config.pipeline_root)


def _damaged_store(path) -> bytes:
    """An ML Metadata store cut in half, as a full disk or a bad copy leaves one."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(path)
    store = metadata_store.MetadataStore(connection)
    run_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline_run"))
    store.put_contexts(
        [metadata_store_pb2.Context(type_id=run_type, name=f"run-{i}") for i in range(200)]
    )
    del store
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path.read_bytes()


def test_a_damaged_metadata_store_is_named_in_one_line_and_retrain_still_sums_up(tmp_path, capsys):
    write_sample_span(str(tmp_path / "data"), 1, train_per_class=2, eval_per_class=2)
    settings = {"output_dir": str(tmp_path), "data.root": str(tmp_path / "data"), **SPAN_PATTERNS}
    config = load_config(settings)
    os.makedirs(os.path.dirname(config.metadata_path))
    damaged = _damaged_store(Path(config.metadata_path))
    (Path(config.serving_model_dir) / "1").mkdir(parents=True)
    (Path(config.serving_model_dir) / "1" / "saved_model.pb").touch()
    assignments = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]

    assert main(["retrain", *assignments]) == 1
    out, err = capsys.readouterr()
    assert (
        out
        == "span 1: FAILED: the ML Metadata store is damaged; nothing pushed; serving version 1\n"
    )
    assert err == (
        f"imgclf retrain: The ML Metadata store {config.metadata_path} is damaged (database disk "
        f"image is malformed). Move it aside (mv {config.metadata_path} {config.metadata_path}"
        ".damaged): the next run starts a new store, sets the old outputs aside, and finds what "
        "is served in the serving folder, which keeps the history.\n"
    )
    assert main(["report", *assignments]) == 2
    _, err = capsys.readouterr()
    assert err.startswith(f"imgclf report: The ML Metadata store {config.metadata_path} is damaged")
    assert err.count("\n") == 1
    assert Path(config.metadata_path).read_bytes() == damaged  # left for the operator
    assert holder(config) is None


def test_retrain_into_a_serving_folder_that_lost_its_versions_stops_in_one_line(tmp_path, capsys):
    write_sample_span(str(tmp_path / "data"), 1, train_per_class=2, eval_per_class=2)
    settings = {"output_dir": str(tmp_path), "data.root": str(tmp_path / "data"), **SPAN_PATTERNS}
    config = load_config(settings)
    record_push(config.push_records_dir, f"{config.serving_model_dir}/1")
    assignments = [arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")]

    assert main(["retrain", *assignments]) == 1
    out, err = capsys.readouterr()
    assert out == "span 1: FAILED: the serving folder lost its versions; nothing run\n"
    assert err.startswith(
        f"imgclf retrain: 1 push(es) to {config.serving_model_dir} are recorded in "
        f"{config.push_records_dir} (the last: {config.serving_model_dir}/1), but it holds no "
        "version now: deleted, or a share mounted empty? Nothing was trained."
    )
    assert holder(config) is None
