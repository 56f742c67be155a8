"""The scheduled runs of backend_sequence.py, the stand-in backend as open-source KFP 2."""

import pytest

from backend import OPEN_SOURCE
from backend_sequence import *  # noqa: F403  (the sequence and its tests, collected here)


@pytest.fixture(scope="module")
def mode() -> str:
    return OPEN_SOURCE
