"""The one reader of TFRecord files every command and component uses."""

import gzip
import logging

import pytest

from bad_records import example, write_records
from imgclf.imagedata.records import UnreadableInputError, list_files, read_tfrecord_file

RECORDS = [example(b"pixels", label, f"r{label}") for label in range(3)]


@pytest.mark.parametrize("name", ["data.tfrecord", "data.tfrecord.gz"])
def test_plain_and_gzip_files_are_read_by_their_names(tmp_path, name):
    write_records(tmp_path / name, RECORDS)
    assert list(read_tfrecord_file(str(tmp_path / name))) == RECORDS


def test_a_gzip_file_not_named_gz_is_named_in_a_clear_error(tmp_path):
    path = tmp_path / "data.tfrecord"
    write_records(tmp_path / "data.tfrecord.gz", RECORDS)
    path.write_bytes((tmp_path / "data.tfrecord.gz").read_bytes())
    with pytest.raises(UnreadableInputError, match="is GZIP-compressed but its name") as raised:
        list(read_tfrecord_file(str(path)))
    assert str(path) in str(raised.value)


def test_a_plain_file_named_gz_is_named_in_a_clear_error(tmp_path):
    write_records(tmp_path / "data.tfrecord", RECORDS)
    path = tmp_path / "data.gz"
    path.write_bytes((tmp_path / "data.tfrecord").read_bytes())
    with pytest.raises(UnreadableInputError, match=r"is named \*\.gz but is not GZIP") as raised:
        list(read_tfrecord_file(str(path)))
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("name", ["data.tfrecord", "data.tfrecord.gz"])
def test_a_corrupted_record_is_named_by_file_and_index(tmp_path, name):
    write_records(tmp_path / "plain", RECORDS)
    raw = bytearray((tmp_path / "plain").read_bytes())
    second_record_data = len(RECORDS[0]) + 16 + 12  # past record 0 and record 1's header
    raw[second_record_data] ^= 0xFF
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    read = []
    with pytest.raises(UnreadableInputError) as raised:
        read.extend(read_tfrecord_file(str(path)))
    assert f"{path}: record 1 (counting from 0) cannot be read" in str(raised.value)
    assert read == RECORDS[:1]


def test_a_zero_byte_file_adds_no_records_and_is_logged_by_name(tmp_path, caplog):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert list(read_tfrecord_file(str(path))) == []
    assert str(path) in caplog.text


def test_a_pattern_that_matches_no_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file") as raised:
        list_files(str(tmp_path / "train" / "*"))
    assert str(tmp_path / "train" / "*") in str(raised.value)
