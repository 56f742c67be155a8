"""The scheduled runs of backend_sequence.py, the stand-in backend as Vertex AI Pipelines."""

import pytest

from backend import VERTEX
from backend_sequence import *  # noqa: F403  (the sequence and its tests, collected here)


@pytest.fixture(scope="module")
def mode() -> str:
    return VERTEX
