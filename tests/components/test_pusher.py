"""What the Pusher's PushedModel says it did, in one sentence (for the model report)."""

import pytest
from tfx.types import standard_artifacts

from imgclf.components.pusher import push_outcome
from imgclf.settings.names import (
    NOT_PUSHED_PROPERTY,
    PUSHED_DESTINATION_PROPERTY,
    PUSHED_PROPERTY,
    PUSHED_VERSION_PROPERTY,
)


def _pushed(**properties) -> standard_artifacts.PushedModel:
    artifact = standard_artifacts.PushedModel()
    for name, value in properties.items():
        if isinstance(value, int):
            artifact.set_int_custom_property(name, value)
        else:
            artifact.set_string_custom_property(name, value)
    return artifact


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            {PUSHED_PROPERTY: 1, PUSHED_VERSION_PROPERTY: 3, PUSHED_DESTINATION_PROPERTY: "/s/3"},
            (3, "Pushed as version 3: /s/3"),
        ),
        (
            {PUSHED_PROPERTY: 0, PUSHED_VERSION_PROPERTY: 2},
            (None, "Not pushed: version 2 already is this model."),
        ),
        (
            {PUSHED_PROPERTY: 0, NOT_PUSHED_PROPERTY: "its classes differ from version 2's"},
            (None, "Not pushed: its classes differ from version 2's."),
        ),
        ({PUSHED_PROPERTY: 0}, (None, "Not pushed.")),
    ],
    ids=["pushed", "already-served", "refused", "not-blessed"],
)
def test_the_push_outcome_names_the_version_or_why_not(properties, expected):
    assert push_outcome(_pushed(**properties)) == expected


def test_without_a_pusher_the_outcome_says_so():
    assert push_outcome(None) == (None, "Not pushed: no Pusher ran.")
