"""The settings reference (docs/settings.md), generated from the configuration's models.

    python -m imgclf.settings.reference > docs/settings.md

Each setting's name (as `--set` and settings files spell it), type, default
and description come from its field in settings/ (config.py and a module per
section), so the reference cannot drift from the code:
tests/settings/test_reference.py fails when the file is out of date.
"""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from imgclf.settings.config import ENV_NESTED_DELIMITER, ENV_PREFIX, PipelineConfig

HEADER = """# Settings

Every setting, generated from the settings models (`settings/`) by
`python -m imgclf.settings.reference > docs/settings.md` (a test fails when
this file is out of date). Give one in a settings file (`--config`), as
`--set name=value`, or in the environment: `{env}` for
`training.phase1_epochs`. How they combine: [Configuration](configuration.md).
""".format(env=f"{ENV_PREFIX}TRAINING{ENV_NESTED_DELIMITER}PHASE1_EPOCHS")


def _section(model: type[BaseModel]) -> bool:
    return isinstance(model, type) and issubclass(model, BaseModel)


def _type_name(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "").replace("NoneType", "None")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    return f"`{json.dumps(value) if not isinstance(value, str) else value or '(empty)'}`"


def _rows(model: type[BaseModel], prefix: str = "") -> typing.Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        if _section(field.annotation):
            yield from _rows(field.annotation, f"{prefix}{name}.")
            continue
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        type_name = _type_name(field.annotation).replace("|", "\\|")
        yield f"`{prefix}{name}`", f"`{type_name}`", _default(field), description


def settings_reference() -> str:
    sections: dict[str, list[tuple[str, ...]]] = {}
    for row in _rows(PipelineConfig):
        name = row[0].strip("`")
        sections.setdefault(name.split(".")[0] if "." in name else "", []).append(row)
    lines = [HEADER]
    for section, rows in sections.items():
        lines.append(f"## {section or 'Top level'}\n")
        lines.append("| setting | type | default | description |")
        lines.append("| --- | --- | --- | --- |")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_reference(), end="")
