"""Batch prediction through Beam's RunInference scores what `imgclf predict` scores, and
turns every input it cannot score into a row that says why."""

import csv

import pytest

from bad_records import write_records
from imgclf.cli.main import main
from imgclf.imagedata.records import LabelledImage, read_records, write_dataset
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.pipeline.batch_predict import batch_predict
from imgclf.pipeline.predict import predict
from imgclf.trainer.export import export_model
from imgclf.trainer.model import build_model
from quick_training import MAX_PIXELS


@pytest.fixture(scope="module")
def model_dir(tiny_backbone, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("pushed") / "1")
    model = build_model(tiny_backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    export_model(model, export_dir, list(DEFAULT_CLASSES), 32, "image", {"phases": []}, MAX_PIXELS)
    return export_dir


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Twelve image files and one that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    records = list(generate_split(DEFAULT_CLASSES, "eval", 3, size=40, image_format="png"))
    for index, record in enumerate(records):
        (folder / f"{index:02d}.png").write_bytes(record.image)
    (folder / "99.png").write_bytes(b"a text file named like an image")
    return folder


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_image_file_gets_the_row_predict_gives_it_and_a_bad_one_an_error_row(
    model_dir, images, tmp_path
):
    result = batch_predict(model_dir, [str(images / "*.png")], str(tmp_path / "out.csv"), top_k=2)
    rows = {row["key"]: row for row in _rows(tmp_path / "out.csv")}
    assert (result.scored, result.errors) == (12, 1)
    assert len(rows) == 13
    bad = rows.pop(str(images / "99.png"))
    assert bad["error"].startswith("not an image: ") and bad["class_1"] == ""
    expected = predict(model_dir, sorted(rows), top_k=2).scored
    for prediction in expected:
        row = rows[prediction.path]
        assert row["error"] == ""
        assert [row["class_1"], row["class_2"]] == prediction.classes
        assert [float(row["p_1"]), float(row["p_2"])] == pytest.approx(
            prediction.probabilities, abs=1e-5
        )


def test_records_are_scored_by_their_id_and_one_without_an_image_is_an_error_row(
    model_dir, tmp_path
):
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    records.append(LabelledImage(b"", 0, "empty-record"))
    write_dataset(str(tmp_path / "data"), list(DEFAULT_CLASSES), {"eval": records}, num_shards=2)
    result = batch_predict(
        model_dir, [str(tmp_path / "data" / "eval" / "*")], str(tmp_path / "out.csv"), records=True
    )
    rows = {row["key"]: row for row in _rows(tmp_path / "out.csv")}
    assert set(rows) == {r.id for r in records}
    assert (result.scored, result.errors) == (8, 1)
    assert rows["empty-record"]["error"].startswith("not an image")
    assert all(rows[r.id]["class_1"] in DEFAULT_CLASSES for r in records[:-1])


def test_the_command_exits_1_when_an_input_could_not_be_scored(model_dir, images, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["batch-predict", model_dir, str(images / "*.png"), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"Wrote 13 rows by {model_dir} to {out}" in captured.out
    assert "1 inputs could not be scored" in captured.err
    assert main(["batch-predict", model_dir, str(images / "*.jpg"), "--out", str(out)]) == 2
    assert f"No file matches {images / '*.jpg'}." in capsys.readouterr().err


def test_a_damaged_record_is_an_error_row_naming_its_file_and_index_and_the_rest_is_scored(
    model_dir, tmp_path
):
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    write_dataset(str(tmp_path / "data"), list(DEFAULT_CLASSES), {"eval": records}, num_shards=2)
    first, second = sorted((tmp_path / "data" / "eval").glob("*.tfrecord"))
    last = sum(1 for _ in read_records(str(second))) - 1
    damaged = bytearray(second.read_bytes())
    damaged[-6] ^= 0xFF  # inside the last record's data: its checksum no longer matches
    second.write_bytes(bytes(damaged))
    not_an_example = tmp_path / "data" / "eval" / "extra.tfrecord"
    write_records(not_an_example, [b"\xff\xff not a protocol buffer"])
    result = batch_predict(
        model_dir, [str(tmp_path / "data" / "eval" / "*")], str(tmp_path / "out.csv"), records=True
    )
    rows = {row["key"]: row for row in _rows(tmp_path / "out.csv")}
    assert (result.scored, result.errors) == (7, 2)
    assert f"{second}[{last}]" in rows
    assert f"record {last} (counting from 0) cannot be read" in rows[f"{second}[{last}]"]["error"]
    assert rows[f"{not_an_example}[0]"]["error"].startswith("not a tf.Example")
    assert sum(row["error"] == "" for row in rows.values()) == 7
    assert str(first) not in "".join(rows)  # the undamaged file: every record scored


def test_image_files_read_as_records_are_error_rows_naming_each_file(model_dir, images, tmp_path):
    result = batch_predict(
        model_dir, [str(images / "*.png")], str(tmp_path / "out.csv"), records=True
    )
    rows = {row["key"]: row for row in _rows(tmp_path / "out.csv")}
    assert (result.scored, result.errors) == (0, 13)
    assert set(rows) == {f"{path}[0]" for path in images.glob("*.png")}
    assert all("record 0 (counting from 0) cannot be read" in row["error"] for row in rows.values())


def test_on_beams_portable_path_the_rows_are_the_direct_runners(
    model_dir, images, tmp_path, portable_beam
):
    """The RunInference handler and the record reader, pickled into separate SDK workers."""
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    write_dataset(str(tmp_path / "data"), list(DEFAULT_CLASSES), {"eval": records}, num_shards=2)
    inputs = {
        "images": ([str(images / "*.png")], False),
        "records": ([str(tmp_path / "data/eval/*")], True),
    }
    for name, (patterns, are_records) in inputs.items():
        rows = {}
        for runner, arguments in (("direct", []), ("portable", portable_beam.arguments())):
            out = tmp_path / f"{name}-{runner}.csv"
            batch_predict(
                model_dir, patterns, str(out), records=are_records, beam_pipeline_args=arguments
            )
            rows[runner] = sorted(_rows(out), key=lambda row: row["key"])
        assert len(rows["portable"]) == {"images": 13, "records": 8}[name]
        for direct, portable_row in zip(rows["direct"], rows["portable"], strict=True):
            assert direct.keys() == portable_row.keys()
            assert [direct[k] for k in ("key", "class_1", "class_2", "error")] == [
                portable_row[k] for k in ("key", "class_1", "class_2", "error")
            ]
            if not direct["error"]:
                assert float(direct["p_1"]) == pytest.approx(float(portable_row["p_1"]), abs=1e-5)
