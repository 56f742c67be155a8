"""Shared test set-up: Keras 2, two logical CPU devices, and small generated data.

MirroredStrategy is tested without GPUs by splitting the CPU into two logical
devices. TensorFlow fixes its devices when it first runs an op, so this
happens here, before any test module touches TensorFlow.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import pytest

from imgclf.settings.config import ENV_PREFIX
from imgclf.trainer.distribution import use_cpu_replicas

CPU_REPLICAS = 2
DEMO_BACKBONE = Path(__file__).parents[1] / "configs/backbones/mobilenet_v2_0.35_64_shapes.h5"
use_cpu_replicas(CPU_REPLICAS)


def _clear_settings_environment() -> None:
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        del os.environ[name]


# The configuration reads IMGCLF_* variables: none from the shell that runs the tests.
_clear_settings_environment()


@pytest.fixture(autouse=True)
def settings_environment_of_its_own():
    """What a test sets in the environment (`imgclf --set` writes there) ends with it."""
    yield
    _clear_settings_environment()


@pytest.fixture(scope="session")
def installed_imgclf(tmp_path_factory) -> Path:
    """The `imgclf` command of the project's wheel, installed into a fresh environment."""
    from installing import build_wheel, environment_with

    root = tmp_path_factory.mktemp("wheel")
    return environment_with(build_wheel(root), root) / "imgclf"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> str:
    """The sample shapes at 64 px (32 train and 16 eval images per class), with its schema."""
    from imgclf.imagedata.sample import write_sample_dataset
    from imgclf.imagedata.schema import make_schema, write_schema
    from imgclf.settings.data import DataConfig

    out = str(tmp_path_factory.mktemp("sample") / "data")
    write_sample_dataset(out, train_per_class=32, eval_per_class=16)
    data = DataConfig(root=out)
    write_schema(make_schema(data), data.schema_path)
    return out


@pytest.fixture(scope="session")
def span_data(tmp_path_factory):
    """Spans 1, 2 and 4 (no 3) of the sample shapes, one image a class and split each."""
    from imgclf.imagedata.sample import write_sample_span
    from imgclf.settings.data import DataConfig

    root = str(tmp_path_factory.mktemp("spans") / "data")
    for span in (1, 2, 4):
        write_sample_span(root, span, train_per_class=1, eval_per_class=1, num_shards=1)
    return DataConfig(
        root=root, train_pattern="span-{SPAN}/train/*", eval_pattern="span-{SPAN}/eval/*"
    )


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A 32 px MobileNetV2 (alpha 0.35) trained for one short epoch, saved as a weights file.

    A fresh network's features are all but zero under inference-mode
    BatchNormalization; briefly trained, its features and statistics are real.
    """
    import tf_keras as keras

    from imgclf.settings.model import ModelConfig
    from imgclf.trainer.pretrain import pretrain_backbone

    # The same weights in every session and test worker, whatever ran before: tests that
    # train on it see the same epochs.
    keras.utils.set_random_seed(0)
    path = str(tmp_path_factory.mktemp("backbone") / "tiny.h5")
    model = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=32, weights=path)
    pretrain_backbone(model, path, train_per_class=16, eval_per_class=2, epochs=1)
    return model


@pytest.fixture(scope="session")
def portable_beam(tmp_path_factory):
    """Beam's portable path (tests/beam_portable.py): the `beam` preset that uses it."""
    from beam_portable import portable_runner

    with portable_runner(tmp_path_factory.mktemp("portable_beam")) as settings:
        yield settings


@pytest.fixture(scope="session")
def backbone_weights() -> str:
    """The demo's bundled backbone: MobileNetV2 (alpha 0.35, 64 px) pretrained on other shapes.

    Tests only read it; `tiny_backbone` makes such a file the same way, smaller.
    """
    return str(DEMO_BACKBONE)


# The longest end-to-end files (about 13 minutes each), started first among them, so that
# two test workers (`--dist loadfile` hands out files in this order) finish together.
LONGEST_FILES = ("test_backend_e2e_open_source.py", "test_backend_e2e_vertex.py")


def pytest_collection_modifyitems(items):
    """Fast unit tests first; whole-pipeline runs (minutes each) last, the longest first."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("e2e") is not None,
            item.path.name not in LONGEST_FILES,
        )
    )
