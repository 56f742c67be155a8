"""The floor plan: each layer imports only from itself and the layers below it.

Read from the source (every import statement, also those inside functions),
so a new upward import fails here before it becomes an import cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Bottom first: imgclf.<layer> may import imgclf.<any layer at or before it>.
LAYERS = [
    "settings",
    "imagedata",
    "trainer",
    "modelstore",
    "components",
    "pipeline",
    "kubeflow",
    "cli",
]
# What the bottom layer must never load: it is read by every process, CLI and test.
FRAMEWORKS = ("tensorflow", "tf_keras", "keras", "tfx", "apache_beam", "kfp")
# Nor a Google client library (Vertex AI's names are checked in the Kubeflow layer).
GOOGLE_CLIENTS = ("google.cloud.", "google.api_core", "google.auth", "googleapiclient")


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def frameworks_loaded_by(modules: str) -> str:
    """The FRAMEWORKS in sys.modules after a fresh interpreter imports `modules`, printed."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {modules}; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(FRAMEWORKS)!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return loaded.stdout.strip()


def package_imports() -> dict[str, set[str]]:
    """Layer -> the other layers its modules import."""
    graph = {}
    for layer in LAYERS:
        imported = set()
        for path in (REPO / layer).glob("*.py"):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "imgclf" and len(parts) > 1 and parts[1] in LAYERS:
                    imported.add(parts[1])
        graph[layer] = imported - {layer}
    return graph


def test_every_layer_folder_is_linked_into_the_namespace():
    for layer in LAYERS:
        assert (REPO / "imgclf" / layer).resolve() == REPO / layer
        # No __init__.py: the top-level folder never shadows a package of the same name.
        assert not (REPO / layer / "__init__.py").exists()


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_downwards(layer):
    allowed = set(LAYERS[: LAYERS.index(layer)])
    upward = package_imports()[layer] - allowed
    assert not upward, f"imgclf.{layer} imports the layers above it: {sorted(upward)}"


def test_no_cycle_between_packages():
    graph = package_imports()
    visiting, done = set(), set()

    def visit(layer, path):
        assert layer not in visiting, f"import cycle: {' -> '.join([*path, layer])}"
        if layer in done:
            return
        visiting.add(layer)
        for imported in sorted(graph[layer]):
            visit(imported, [*path, layer])
        visiting.discard(layer)
        done.add(layer)

    for layer in LAYERS:
        visit(layer, [])


def test_the_settings_layer_loads_no_framework_and_no_google_client():
    for path in (REPO / "settings").glob("*.py"):
        frameworks = {
            m
            for m in imported_modules(path)
            if m.split(".")[0] in FRAMEWORKS or m.startswith(GOOGLE_CLIENTS)
        }
        assert not frameworks, f"{path.name} imports {sorted(frameworks)}"
    assert frameworks_loaded_by("imgclf.settings.config, imgclf.settings.names") == "[]"
    clients = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, imgclf.settings.config; "
            f"print(sorted(m for m in sys.modules if m.startswith({GOOGLE_CLIENTS!r})))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert clients.stdout.strip() == "[]"


def test_the_model_store_loads_tensorflow_but_no_pipeline_framework():
    """A second store (a model registry) could stand beside it without TFX, Beam or KFP."""
    loaded = frameworks_loaded_by("imgclf.modelstore.history, imgclf.modelstore.serving_folder")
    assert loaded == "['tensorflow', 'tf_keras']"


def test_the_command_line_starts_without_loading_a_framework():
    """`imgclf --help` and a mistyped setting answer at once: each command loads what it needs."""
    assert frameworks_loaded_by("imgclf.cli.main") == "[]"
