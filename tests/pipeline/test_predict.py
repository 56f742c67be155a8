import base64
import csv
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from damaged import half_copied
from imgclf.cli.main import main
from imgclf.imagedata.decode import decode_and_resize
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.pipeline.predict import image_files, predict, resolve_model_dir, rest_request, write_csv
from imgclf.trainer.export import IMAGES_INPUT, SERVING_IMAGES, export_model
from imgclf.trainer.model import build_model
from quick_training import MAX_PIXELS


@pytest.fixture(scope="module")
def serving(tiny_backbone, tmp_path_factory):
    """A serving folder holding version 1 of a model, and the model in memory."""
    root = tmp_path_factory.mktemp("serving")
    tf.keras.utils.set_random_seed(1)
    model = build_model(tiny_backbone, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    export_model(
        model, str(root / "classifier" / "1"), list(DEFAULT_CLASSES), 32, "image", {}, MAX_PIXELS
    )
    images = tmp_path_factory.mktemp("images")
    records = list(generate_split(DEFAULT_CLASSES, "eval", 2, size=40, image_format="jpeg"))
    for record in records:
        (images / f"{record.id}.jpg").write_bytes(record.image)
    return root, model, records, images


def test_the_latest_version_is_found_from_the_model_or_serving_folder(tmp_path):
    # Resolution reads only folder names and saved_model.pb files: no model is needed.
    for version in ("1", "2", "10"):
        (tmp_path / "classifier" / version).mkdir(parents=True)
        (tmp_path / "classifier" / version / "saved_model.pb").touch()
    (tmp_path / "classifier" / "11").write_text("a stray file, not a version")
    latest = str(tmp_path / "classifier" / "10")
    assert resolve_model_dir(str(tmp_path)) == latest
    assert resolve_model_dir(str(tmp_path / "classifier")) == latest
    assert resolve_model_dir(str(tmp_path / "classifier" / "1")) == str(
        tmp_path / "classifier" / "1"
    )


def test_predict_names_a_served_version_that_cannot_be_loaded(serving, tmp_path, capsys):
    root, _, _, images = serving
    damaged = half_copied(str(root / "classifier" / "1"), str(tmp_path / "classifier" / "2"))
    assert main(["predict", str(tmp_path), str(next(images.iterdir()))]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"imgclf predict: The model in {damaged} cannot be loaded (Read less bytes than "
        "requested): a damaged or half-copied file? If it is a served version, move it out of "
        "the serving folder: TF Serving cannot load it either, and imgclf then uses the newest "
        "version before it."
    ]


def test_predict_uses_the_newest_complete_version_and_names_a_half_copied_one(
    serving, tmp_path, capsys, caplog
):
    root, _, _, images = serving
    folder = tmp_path / "classifier"
    shutil.copytree(root / "classifier" / "1", folder / "1")
    shutil.copytree(root / "classifier" / "1" / "variables", folder / "2" / "variables")
    image = str(next(images.iterdir()))
    assert main(["predict", str(folder), image]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")
    assert resolve_model_dir(str(folder)) == str(folder / "1")
    assert f"Skipped version 2 in {folder}: it has no saved_model.pb" in caplog.text


def test_a_folder_without_a_model_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is not a SavedModel"):
        resolve_model_dir(str(tmp_path))


def test_predictions_equal_the_in_memory_model_s(serving):
    root, model, records, images = serving
    files = image_files([str(images)])
    assert [f.split("/")[-1] for f in files] == sorted(f"{r.id}.jpg" for r in records)
    predictions = predict(resolve_model_dir(str(root)), files, top_k=4).scored
    pixels = tf.stack(
        [decode_and_resize(r.image, 32, MAX_PIXELS) for r in sorted(records, key=lambda r: r.id)]
    )
    expected = model(pixels, training=False).numpy()
    for prediction, row in zip(predictions, expected):
        assert prediction.classes[0] == DEFAULT_CLASSES[int(row.argmax())]
        assert prediction.probabilities == sorted(prediction.probabilities, reverse=True)
        by_name = dict(zip(prediction.classes, prediction.probabilities))
        np.testing.assert_allclose([by_name[c] for c in DEFAULT_CLASSES], row, atol=1e-5)


def test_the_csv_has_a_row_per_image_with_ranked_classes(serving, tmp_path):
    root, _, _, images = serving
    predictions = predict(resolve_model_dir(str(root)), image_files([str(images)]), top_k=2).scored
    write_csv(predictions, str(tmp_path / "p.csv"))
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "class_1", "p_1", "class_2", "p_2"]
    assert len(rows) == 1 + len(predictions)
    assert rows[1][1] == predictions[0].classes[0]


def test_an_image_that_does_not_decode_is_listed_and_the_others_are_scored(serving, tmp_path):
    root, _, _, images = serving
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not an image")
    files = [str(bad), *image_files([str(images)])]
    predictions = predict(resolve_model_dir(str(root)), files)
    assert list(predictions.unreadable) == [str(bad)]
    assert [p.path for p in predictions.scored] == files[1:]


def test_the_rest_request_body_fits_the_exported_signature(serving):
    """What TF Serving does with the body: b64 -> bytes -> the signature's string input."""
    root, _, records, _ = serving
    body = json.loads(json.dumps(rest_request([r.image for r in records])))
    assert body["signature_name"] == SERVING_IMAGES
    signature = tf.saved_model.load(resolve_model_dir(str(root))).signatures[SERVING_IMAGES]
    (spec,) = signature.structured_input_signature[1].values()
    assert (spec.name, spec.dtype, spec.shape.as_list()) == (IMAGES_INPUT, tf.string, [None])
    assert all(set(instance) == {IMAGES_INPUT} for instance in body["instances"])
    decoded = [base64.b64decode(i[IMAGES_INPUT]["b64"]) for i in body["instances"]]
    assert decoded == [r.image for r in records]
    outputs = signature(**{IMAGES_INPUT: tf.constant(decoded)})
    assert outputs["probabilities"].shape == (len(records), len(DEFAULT_CLASSES))


def test_imgclf_predict_prints_top_k_or_writes_a_csv_for_a_folder(serving, tmp_path, capsys):
    root, _, records, images = serving
    first = sorted(images.iterdir())[0]
    assert main(["predict", str(root), str(first), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{first}: ")
    assert len(line.split(": ", 1)[1].split(", ")) == 2
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(root), str(images), "--csv", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + len(records)


def test_imgclf_predict_on_a_folder_with_a_bad_file_writes_the_rest_and_names_it(
    serving, tmp_path, capsys
):
    root, _, records, images = serving
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images.iterdir():
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 cut short")
    out = tmp_path / "predictions.csv"
    capsys.readouterr()
    assert main(["predict", str(root), str(folder), "--csv", str(out)]) == 1
    assert len(out.read_text().splitlines()) == 1 + len(records)
    assert capsys.readouterr().err == (
        f"imgclf predict: 1 of {len(records) + 1} files are not images this model can decode, "
        f"and were not scored:\n  {folder / 'broken.jpg'}: not an image: no JPEG, PNG, GIF, "
        "BMP header\n"
    )
