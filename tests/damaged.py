"""Copies of an exported model with one file damaged, as a half-finished copy leaves them."""

import os
import shutil


def half_copied(model_dir: str, to: str, damaged: str = "variables") -> str:
    """A copy of `model_dir` at `to`, its variables data file (or saved_model.pb) cut in half."""
    shutil.copytree(model_dir, to)
    if damaged == "variables":
        folder = os.path.join(to, "variables")
        name = next(n for n in os.listdir(folder) if n.startswith("variables.data"))
        path = os.path.join(folder, name)
    else:
        path = os.path.join(to, "saved_model.pb")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    return to
