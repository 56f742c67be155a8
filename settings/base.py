"""What every section of the configuration shares: its base model, paths, errors."""

from __future__ import annotations

import os
import shlex
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    model_validator,
)
from pydantic_settings import NoDecode

# Files that ship inside the package (configs/, linked into imgclf like the layers), so
# an installed wheel has them too: `imgclf demo`'s settings and the bases they name.
BUNDLED_CONFIGS = Path(__file__).parent.parent / "configs"
DEMO_CONFIG = BUNDLED_CONFIGS / "demo.yaml"


class ConfigError(ValueError):
    """A setting is missing, unknown or invalid; the message names it and its source."""


def is_remote(path: str) -> bool:
    return "://" in path


def absolute_path(path: str) -> str:
    return path if is_remote(path) else os.path.abspath(os.path.expanduser(path))


def empty_means_none(model: type[BaseModel], values: Any) -> Any:
    """An empty environment variable (`--set data.span=`) unsets an optional setting."""
    if isinstance(values, dict):
        for name, field in model.model_fields.items():
            if values.get(name) == "" and type(None) in typing.get_args(field.annotation):
                values[name] = None
    return values


def _shell_words(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


# Lists of arguments are written shell-style in the environment: "--runner=X --region=Y".
ArgumentList = Annotated[list[str], NoDecode, BeforeValidator(_shell_words)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _unset_empty(cls, values: Any) -> Any:
        return empty_means_none(cls, values)
