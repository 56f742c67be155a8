"""`imgclf make-schema` (and so a first `imgclf run`) on records it cannot read: one line
naming the file and the record, as the pipeline's own reader names them."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bad_records import write_records
from imgclf.cli.main import main
from imgclf.imagedata.sample import write_sample_dataset


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    write_sample_dataset(str(root), num_shards=1, train_per_class=2, eval_per_class=1)
    return root


def _make_schema(root) -> int:
    return main(["make-schema", "--set", f"data.root={root}"])


@pytest.mark.parametrize(
    "name, says",
    [
        ("cut.tfrecord", r"cut\.tfrecord: record \d+ \(counting from 0\) cannot be read"),
        ("words.tfrecord", r"words\.tfrecord: record 0 \(counting from 0\) is not a tf\.Example\."),
        ("plain.gz", r"plain\.gz is named \*\.gz but is not GZIP-compressed"),
    ],
)
def test_a_record_make_schema_cannot_read_is_named_in_one_line(dataset, capsys, name, says):
    shard = next((dataset / "train").glob("*.tfrecord")).read_bytes()
    bad = dataset / "train" / name
    if name == "words.tfrecord":
        write_records(bad, [b"these are words"])
    else:  # cut in half, or named .gz but not compressed
        bad.write_bytes(shard[: len(shard) // 2] if name == "cut.tfrecord" else shard)
    assert _make_schema(dataset) == 2
    _, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(f"imgclf make-schema: {dataset / 'train'}/")
    assert re.search(says, line)
    assert not (dataset / "schema.pbtxt").exists()


def test_make_schema_writes_the_schema_and_leaves_nothing_in_the_temp_folder(
    dataset, tmp_path, monkeypatch
):
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    assert _make_schema(dataset) == 0
    assert (dataset / "schema.pbtxt").exists()
    assert os.listdir(system_tmp) == []


def test_make_schema_says_one_line_on_a_screen_that_shows_tensorflows_warnings(dataset):
    """TensorFlow's "End of sequence" lines, Beam's and TFDV's notes stay off the screen."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    typed = subprocess.run(
        [
            str(Path(sys.executable).with_name("imgclf")),
            "make-schema",
            "--set",
            f"data.root={dataset}",
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout.startswith("Wrote the curated schema of ")
    assert typed.stderr == ""


def test_a_stray_file_without_records_is_skipped_as_the_pipelines_reader_skips_it(dataset):
    (dataset / "train" / "README.md").write_text("# notes\n")
    assert _make_schema(dataset) == 0
    assert (dataset / "schema.pbtxt").exists()
