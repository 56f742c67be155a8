"""The settings options every command that builds the configuration takes.

`--config FILE` and `--set section.name=value` become IMGCLF_* environment
variables, so the TFX CLI's child processes and Beam workers see them too.
"""

from __future__ import annotations

import argparse
import os

from imgclf.settings.config import (
    CONFIG_FILE_ENV,
    SET_ON_COMMAND_LINE_ENV,
    parse_assignment,
    to_env,
)


def add_command(
    commands, name: str, handler, help: str, settings: bool = True
) -> argparse.ArgumentParser:
    """A subcommand of `imgclf` run by `handler(args)`; with `settings`, --config and --set."""
    sub = commands.add_parser(name, help=help, description=help)
    sub.set_defaults(handler=handler)
    if settings:
        add_settings_options(sub)
    return sub


def at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"YAML settings file (sets ${CONFIG_FILE_ENV}).")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="Override one setting, e.g. training.phase1_epochs=3.",
    )


def apply_settings(args: argparse.Namespace) -> None:
    """Puts --config and --set into the environment, for this process and its children."""
    if getattr(args, "config", None):
        os.environ[CONFIG_FILE_ENV] = os.path.abspath(args.config)
    flagged = set(filter(None, os.environ.get(SET_ON_COMMAND_LINE_ENV, "").split(",")))
    for assignment in getattr(args, "set", []):
        name, value = to_env(*parse_assignment(assignment))
        os.environ[name] = value
        flagged.add(name)
    if flagged:
        os.environ[SET_ON_COMMAND_LINE_ENV] = ",".join(sorted(flagged))
