import os

import pytest
import tensorflow as tf

from imgclf.components.pusher import PROVENANCE_FILE, latest_is, push, read_provenance, versions


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
    assert versions(str(tmp_path)) == [1, 2, 10]
    assert versions(str(tmp_path / "absent")) == []


def test_each_push_is_the_next_integer_version_with_the_whole_model(tmp_path):
    serving = tmp_path / "serving" / "model"
    first = push(_model(tmp_path, b"one"), str(serving))
    second = push(_model(tmp_path / "b", b"two"), str(serving))
    assert (first, second) == (str(serving / "1"), str(serving / "2"))
    assert (serving / "2" / "saved_model.pb").read_bytes() == b"two"
    assert (serving / "2" / "variables" / "variables.index").read_bytes() == b"index"
    assert sorted(os.listdir(serving)) == ["1", "2"]


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
