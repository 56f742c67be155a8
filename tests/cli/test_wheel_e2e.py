"""The project as users install it: its wheel in a fresh environment, run from an empty folder.

`imgclf demo` writes the sample data there, reads its settings and its base network
from inside the installed package, registers and runs the pipeline through the TFX
CLI of the environment's own interpreter (no `tfx` script on PATH), and pushes a
model; `imgclf validate` then checks the same data. Each command gets a temp folder
of its own, to see what it leaves there. `imgclf run` from the wheel, on data of
one's own: tests/pipeline/test_local_run_e2e.py.
"""

import json
import subprocess
from pathlib import Path

import pytest

from installing import environment_of_a_user

pytestmark = pytest.mark.e2e
COMMAND_DEADLINE_SECONDS = 1200
SERVED = "outputs/serving/image_classifier/1"
# The demo's settings, with a training budget for a test.
SHORT_TRAINING = {
    "training.phase1_epochs": 1,
    "training.phase2_epochs": 1,
    "training.compare_scratch": "false",
}


def _typed(imgclf: Path, arguments: list[str], cwd: Path, tmp: Path) -> dict:
    """What a user sees of one command, and what it left in its temp folder."""
    typed = subprocess.run(
        [str(imgclf), *arguments],
        cwd=cwd,
        env=environment_of_a_user(tmp),
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )
    left = sorted(tmp.rglob("*"))
    return {
        "status": typed.returncode,
        "out": typed.stdout,
        "err": typed.stderr,
        "left_in_tmp": [str(path) for path in left],
        "bytes_left_in_tmp": sum(path.stat().st_size for path in left if path.is_file()),
    }


@pytest.fixture(scope="module")
def commands(installed_imgclf, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("empty")
    short = [arg for name, value in SHORT_TRAINING.items() for arg in ("--set", f"{name}={value}")]
    return {
        "folder": folder,
        "python": installed_imgclf.with_name("python"),
        "demo": _typed(installed_imgclf, ["demo", *short], folder, tmp_path_factory.mktemp("tmp")),
        "validate": _typed(
            installed_imgclf,
            ["validate", "--set", "data.root=data/sample"],
            folder,
            tmp_path_factory.mktemp("tmp"),
        ),
    }


def test_the_demo_writes_the_sample_data_where_it_is_run_and_pushes_a_model(commands):
    demo, folder = commands["demo"], commands["folder"]
    assert demo["status"] == 0, demo["err"][-3000:]
    assert f"Writing the sample dataset to {folder / 'data/sample'}" in demo["out"]
    assert (folder / "data/sample/labels.txt").read_text().split() == [
        "circle",
        "square",
        "triangle",
        "plus",
    ]
    version = folder / SERVED
    assert f"  Pushed to: {version}" in demo["out"]
    assert (version / "saved_model.pb").is_file()


def test_the_demo_runs_the_packaged_runner_with_the_environments_own_tfx_cli(commands):
    (pipeline_create,) = [
        line for line in commands["demo"]["out"].splitlines() if "--pipeline_path" in line
    ]
    python, folder = commands["python"], commands["folder"]
    assert pipeline_create.startswith(
        f"$ BEAM_HOME={folder / 'outputs/tfx'} {python} -m tfx.tools.cli.cli_main pipeline create"
    )
    runner = Path(pipeline_create.split("--pipeline_path ")[1])
    # Inside the installed package: nothing is read from the repository.
    assert runner.name == "local_runner.py"
    assert runner.parent.name == "imgclf"
    assert runner.is_relative_to(python.parents[1])


def test_the_demo_starts_from_the_base_network_bundled_in_the_package(commands):
    python = commands["python"]
    (bundled,) = python.parents[1].glob("lib/python*/site-packages/imgclf/configs/backbones/*.h5")
    summary = commands["folder"] / SERVED / "assets.extra/training_summary.json"
    assert json.loads(summary.read_text())["weights"] == str(bundled)


def test_validate_checks_the_same_data(commands):
    validate = commands["validate"]
    assert validate["status"] == 0, validate["err"][-3000:]
    assert "Image validation: PASSED\ntrain: 1024 records, 1024 good" in validate["out"]


@pytest.mark.parametrize("command", ["demo", "validate"])
def test_nothing_is_left_in_the_temp_folder(commands, command):
    assert commands[command]["left_in_tmp"] == []
    assert commands[command]["bytes_left_in_tmp"] == 0
