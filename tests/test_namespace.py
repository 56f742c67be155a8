"""Installed beside the Kubeflow SDK, kubeflow-katib, kubeflow-training or Coqui's
`trainer`, the project breaks none of them, and none of them breaks it.

The registry is not reachable from tests, so each is stood in for by a package
with its import layout (read from the published wheels): the Kubeflow SDK
(`kubeflow` 0.5) is a regular package `kubeflow` with `kubeflow.trainer` and
`kubeflow.pipelines`; kubeflow-katib 0.19 and kubeflow-training 1.9 share a
pkgutil-style namespace `kubeflow` (`extend_path`); Coqui's is a package `trainer`.
Each case installs them and the project (normal or editable) into a prefix of
its own and imports from the repository's root, as `make test` does, and from
elsewhere, as the image (an installed wheel) does.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from installing import REPO, copy_of_the_project, pip, site_packages

DISTRIBUTION = "tfx_image_classifier"
# Into a prefix of its own: --ignore-installed, or pip would first uninstall the
# project's own editable install from the environment running the tests.
INTO = ("--no-deps", "--no-build-isolation", "--ignore-installed", "--prefix")
PKGUTIL_INIT = '__path__ = __import__("pkgutil").extend_path(__path__, __name__)\n'
STAND_INS = {
    "kubeflow": {
        "kubeflow/__init__.py": '__version__ = "0.5.0"\n',
        "kubeflow/trainer/__init__.py": 'OWNER = "kubeflow"\n',
        "kubeflow/pipelines/__init__.py": 'OWNER = "kubeflow"\n',
    },
    "kubeflow-katib": {
        "kubeflow/__init__.py": PKGUTIL_INIT,
        "kubeflow/katib/__init__.py": 'OWNER = "kubeflow-katib"\n',
    },
    "kubeflow-training": {
        "kubeflow/__init__.py": PKGUTIL_INIT,
        "kubeflow/training/__init__.py": 'OWNER = "kubeflow-training"\n',
    },
    "coqui-trainer": {"trainer/__init__.py": 'OWNER = "coqui-trainer"\n'},
}
# Which stand-ins share one environment (the SDK and Katib overwrite each other's
# kubeflow/__init__.py, which is between them, not this project's business).
ENVIRONMENTS = {
    "kubeflow-sdk": ["kubeflow", "coqui-trainer"],
    "katib-and-training": ["kubeflow-katib", "kubeflow-training"],
}


def write_stand_in(root: Path, name: str) -> Path:
    project = root / name
    for relative, text in STAND_INS[name].items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    (project / "setup.py").write_text(
        textwrap.dedent(f"""
        import setuptools
        setuptools.setup(name={name!r}, version="1.0", packages=setuptools.find_packages())
        """)
    )
    return project


def where_each_comes_from(prefix: Path, modules: list[str], cwd: Path) -> dict:
    """Finds `modules` from `cwd` with only `prefix` installed; imports the stand-ins'."""
    script = textwrap.dedent(f"""
        import importlib, importlib.util, json, site
        site.addsitedir({str(site_packages(prefix))!r})
        found = {{}}
        for name in {modules!r}:
            spec = importlib.util.find_spec(name)
            found[name] = spec.origin if spec else None
            if not name.startswith("imgclf."):
                found[name + ":owner"] = getattr(importlib.import_module(name), "OWNER", None)
        print(json.dumps(found))
    """)
    # -S: none of this machine's site-packages, only the prefix (and the stdlib).
    answer = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stand_ins")
    return {name: write_stand_in(root, name) for name in STAND_INS}


@pytest.mark.parametrize("editable", [False, True], ids=["normal", "editable"])
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_installed_side_by_side_each_answers_for_its_own_modules(
    environment, editable, stand_ins, tmp_path
):
    prefix = tmp_path / "prefix"
    theirs = ENVIRONMENTS[environment]
    for name in theirs:
        pip("install", *INTO, str(prefix), str(stand_ins[name]))
    before = {p: p.read_bytes() for p in site_packages(prefix).rglob("*.py")}
    # A normal install builds in the source tree: from a copy, so the repository stays clean.
    ours = ["-e", str(REPO)] if editable else [str(copy_of_the_project(tmp_path / "project"))]
    pip("install", *INTO, str(prefix), *ours)

    # Our install wrote nothing over theirs, and owns nothing but imgclf.
    assert {p: p.read_bytes() for p in before} == before
    (record,) = site_packages(prefix).glob(f"{DISTRIBUTION}-*.dist-info/RECORD")
    paths = [line.split(",")[0] for line in record.read_text().splitlines()]
    scripts = {Path(path).name for path in paths if path.startswith("../")}
    owned = {path.split("/")[0] for path in paths if not path.startswith("../")}
    assert scripts == {"imgclf"}, scripts
    # An editable install adds its import hook (a .pth and the finder it loads).
    hooks = {top for top in owned if top.startswith("__editable__")} | {"__pycache__"}
    assert owned - hooks <= {"imgclf", record.parent.name}, owned

    their_modules = {
        "kubeflow-sdk": {
            "kubeflow.trainer": "kubeflow",
            "kubeflow.pipelines": "kubeflow",
            "trainer": "coqui-trainer",
        },
        "katib-and-training": {
            "kubeflow.katib": "kubeflow-katib",
            "kubeflow.training": "kubeflow-training",
        },
    }[environment]
    our_modules = ["imgclf.kubeflow.runner", "imgclf.trainer.task", "imgclf.settings.config"]
    from_the_repository = where_each_comes_from(prefix, [*their_modules, *our_modules], REPO)
    for module, owner in their_modules.items():
        assert from_the_repository[f"{module}:owner"] == owner, module
        assert from_the_repository[module].startswith(str(prefix)), from_the_repository[module]
    # Elsewhere, ours come from the install: the prefix, or the repository when editable.
    from_elsewhere = where_each_comes_from(prefix, our_modules, tmp_path)
    for module in our_modules:
        source = (REPO / Path(*module.split(".")[1:])).with_suffix(".py")
        for found in (from_the_repository, from_elsewhere):
            assert Path(found[module]).read_bytes() == source.read_bytes(), module
        expected_root = REPO if editable else prefix
        assert from_elsewhere[module].startswith(str(expected_root)), from_elsewhere[module]
