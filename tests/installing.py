"""The project installed as users install it: built into a wheel, installed into a fresh
virtual environment, away from the repository.

The fresh environment borrows the pinned stack (TensorFlow, TFX, Beam...) from the
environment running the tests, by a .pth file written after the install, and holds
nothing else: no `tfx` or other script on its PATH, no editable link to the
repository, so what works there works from the wheel alone.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT_OF_COPY = (".*", "outputs", "data", "build", "*.egg-info", "__pycache__", "tests")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")
PIP_DEADLINE_SECONDS = 300


def pip(*args: str, python: str = sys.executable) -> None:
    subprocess.run(
        [python, *PIP[1:], *args], check=True, capture_output=True, timeout=PIP_DEADLINE_SECONDS
    )


def environment_of_a_user(tmp: Path) -> dict[str, str]:
    """This process's environment for a command of the installed wheel, with a temp folder
    of its own; without PYTHONPATH, which would put a checkout before the wheel."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return {**environment, "TMPDIR": str(tmp)}


def copy_of_the_project(destination: Path) -> Path:
    """A build writes into the source tree: a copy keeps the repository clean."""
    skipped = shutil.ignore_patterns(*LEFT_OUT_OF_COPY)
    shutil.copytree(REPO, destination, symlinks=True, ignore=skipped)
    return destination


def site_packages(prefix: Path) -> Path:
    (found,) = prefix.glob("lib/python*/site-packages")
    return found


def build_wheel(root: Path) -> Path:
    """`pip wheel` of the project, as the Dockerfile builds it."""
    source = copy_of_the_project(root / "source")
    pip(
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(root / "wheels"),
        str(source),
    )
    (wheel,) = (root / "wheels").glob("*.whl")
    return wheel


def environment_with(wheel: Path, root: Path) -> Path:
    """A fresh virtual environment with `wheel` installed; its bin folder."""
    environment = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(environment)],
        check=True,
        capture_output=True,
        timeout=PIP_DEADLINE_SECONDS,
    )
    pip("install", "--no-deps", "--no-index", str(wheel), python=str(environment / "bin/python"))
    stack = sysconfig.get_paths()["purelib"]
    (site_packages(environment) / "pinned_stack.pth").write_text(stack + "\n")
    return environment / "bin"
