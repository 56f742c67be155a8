import errno
import os
import shutil
import socket
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import logging

from imgclf.modelstore.serving_folder import (
    PROVENANCE_FILE,
    STAGING_PREFIX,
    latest_is,
    lend_version,
    push,
    read_provenance,
    versions,
)


def _model(root, content: bytes = b"graph"):
    model = root / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(content)
    (model / "variables" / "variables.index").write_bytes(b"index")
    return str(model)


def test_versions_are_the_integer_named_folders_in_order(tmp_path):
    # TF Serving reads versions as decimal ASCII digits: "²" is a digit to Python, not to it.
    for name in ("10", "2", ".incoming-3-abc", "notes", "1", "\u00b2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").touch()
    assert versions(str(tmp_path)) == [1, 2, 10]
    assert versions(str(tmp_path / "absent")) == []


def test_a_version_folder_without_its_saved_model_is_skipped_and_named(tmp_path, caplog):
    served = _model(tmp_path / "a", b"one")
    serving = tmp_path / "serving"
    push(served, str(serving))
    (serving / "2" / "variables").mkdir(parents=True)  # another tool's copy, half done
    assert versions(str(serving)) == [1]
    assert f"Skipped version 2 in {serving}: it has no saved_model.pb" in caplog.text
    assert latest_is(served, str(serving)) == 1
    # A new push goes past the half copy's number and leaves it alone.
    assert push(_model(tmp_path / "b", b"two"), str(serving)) == str(serving / "3")
    assert os.listdir(serving / "2") == ["variables"]


def test_stray_files_in_a_shared_serving_folder_are_ignored_never_counted_or_overwritten(
    tmp_path, monkeypatch
):
    serving = tmp_path / "serving"
    served = _model(tmp_path / "a", b"one")
    push(served, str(serving))
    (serving / "7").write_text("not a model")  # a file that looks like a version
    (serving / "README").write_text("notes")
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda message, *args: warnings.append(message % args))
    assert versions(str(serving)) == [1]
    assert sorted(warnings) == [
        f"Ignored in the serving folder (not a version folder): {serving / name}"
        for name in ("7", "README")
    ]
    # The same model is recognised behind the stray file, and a new one goes past it.
    assert latest_is(served, str(serving)) == 1
    assert push(_model(tmp_path / "b", b"two"), str(serving)) == str(serving / "8")
    assert (serving / "7").read_text() == "not a model"


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        timeout=60,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_a_staging_folder_left_by_a_dead_push_is_removed_by_the_next_push(tmp_path):
    serving = tmp_path / "serving"
    host = socket.gethostname()
    dead = serving / f"{STAGING_PREFIX}1-0123abcd-{host}-{_dead_pid()}"
    live = serving / f"{STAGING_PREFIX}1-4567abcd-{host}-{os.getpid()}"
    elsewhere = serving / f"{STAGING_PREFIX}1-89abcdef-another-host-{_dead_pid()}"
    for leftover in (dead, live, elsewhere):
        (leftover / "variables").mkdir(parents=True)
    assert push(_model(tmp_path), str(serving)) == str(serving / "1")
    # A push still running here, or on another machine, is left alone.
    assert sorted(os.listdir(serving)) == sorted(["1", live.name, elsewhere.name])


def test_each_push_is_the_next_integer_version_with_the_whole_model(tmp_path):
    serving = tmp_path / "serving" / "model"
    first = push(_model(tmp_path, b"one"), str(serving))
    second = push(_model(tmp_path / "b", b"two"), str(serving))
    assert (first, second) == (str(serving / "1"), str(serving / "2"))
    assert (serving / "2" / "saved_model.pb").read_bytes() == b"two"
    assert (serving / "2" / "variables" / "variables.index").read_bytes() == b"index"
    assert sorted(os.listdir(serving)) == ["1", "2"]


def _files(root) -> dict[str, os.stat_result]:
    return {
        os.path.relpath(os.path.join(folder, name), root): os.stat(os.path.join(folder, name))
        for folder, _, names in os.walk(root)
        for name in names
    }


def test_a_version_lent_to_a_reader_is_linked_not_copied_and_outlives_the_loan(tmp_path):
    serving = tmp_path / "serving" / "model"
    push(_model(tmp_path), str(serving))
    lent = tmp_path / "evaluator" / "Format-Serving"
    assert lend_version(str(serving), 1, str(lent)) == "linked"
    served, linked = _files(serving / "1"), _files(lent)
    assert linked.keys() == served.keys() == {"saved_model.pb", "variables/variables.index"}
    assert all(linked[name].st_ino == served[name].st_ino for name in served)  # the same bytes
    shutil.rmtree(tmp_path / "evaluator")
    assert (serving / "1" / "saved_model.pb").read_bytes() == b"graph"


def test_a_version_is_copied_where_the_file_system_cannot_link_it(tmp_path, monkeypatch):
    serving = tmp_path / "serving" / "model"
    push(_model(tmp_path), str(serving))

    def across_devices(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", across_devices)
    lent = tmp_path / "evaluator" / "Format-Serving"
    assert lend_version(str(serving), 1, str(lent)) == "copied"
    assert (lent / "saved_model.pb").read_bytes() == b"graph"
    assert (lent / "variables" / "variables.index").read_bytes() == b"index"
    assert (lent / "saved_model.pb").stat().st_ino != (
        serving / "1" / "saved_model.pb"
    ).stat().st_ino


def test_a_push_cut_short_leaves_no_version_and_no_staging_folder(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    model = _model(tmp_path)
    push(model, str(serving))
    copy = tf.io.gfile.copy
    copied = []

    def copy_then_fail(source, destination, overwrite=False):
        if copied:
            raise OSError("disk full")
        copied.append(destination)
        copy(source, destination, overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        push(model, str(serving))
    assert copied  # the second version was partly written...
    assert sorted(os.listdir(serving)) == ["1"]  # ...but never where a server looks


def test_the_model_the_newest_version_already_holds_is_recognised(tmp_path):
    serving = str(tmp_path / "serving")
    first = _model(tmp_path / "a", b"one")
    assert latest_is(first, serving) is None  # nothing pushed yet
    push(first, serving)
    assert latest_is(first, serving) == 1
    second = _model(tmp_path / "b", b"two")
    assert latest_is(second, serving) is None  # another model
    push(second, serving)
    assert latest_is(first, serving) is None  # only the newest version counts


def test_what_a_push_records_travels_with_the_version_and_is_not_the_model(tmp_path):
    serving = str(tmp_path / "serving")
    note = tmp_path / "provenance.json"
    note.write_text('{"span": 3}')
    model = _model(tmp_path)
    destination = push(model, serving, {PROVENANCE_FILE: str(note)})
    assert read_provenance(destination) == {"span": 3}
    # The record does not make the version another model: a rerun pushes nothing.
    assert latest_is(model, serving) == 1
