"""Predicting with a pushed model, the way a serving client does: raw image bytes in.

`imgclf predict` loads a pushed version (or the latest under a serving
folder) and calls its `serving_images` signature, the same one TF Serving
exposes. `rest_request` builds the body of TF Serving's REST predict call for
that signature, so the example in docs/serving.md and the tests share one definition.
"""

from __future__ import annotations

import base64
import csv
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from imgclf.imagedata.decode import DECODER_NOISE, why_undecodable
from imgclf.imagedata.folders import IMAGE_EXTENSIONS
from imgclf.imagedata.native_stderr import native_stderr_without
from imgclf.imagedata.records import read_labels
from imgclf.modelstore.serving_folder import SAVED_MODEL_FILE, versions
from imgclf.settings.names import LABELS_FILENAME
from imgclf.trainer.export import IMAGES_INPUT, SERVING_IMAGES, load_saved_model, max_pixels_of

# How many images go through the model at once.
BATCH_SIZE = 64


@dataclass(frozen=True)
class Prediction:
    path: str
    classes: list[str]  # the top k class names, most probable first
    probabilities: list[float]


@dataclass(frozen=True)
class Predictions:
    scored: list[Prediction]
    unreadable: dict[str, str]  # files the model cannot take (path: why): named, never scored


def resolve_model_dir(path: str) -> str:
    """A SavedModel folder: `path` itself, or its highest version, or the one model's highest."""
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    present = versions(path)
    if present:
        return os.path.join(path, str(present[-1]))
    if tf.io.gfile.isdir(path):
        models = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
        with_versions = [name for name in models if versions(os.path.join(path, name))]
        if len(with_versions) == 1:
            return resolve_model_dir(os.path.join(path, with_versions[0]))
    raise FileNotFoundError(
        f"{path} is not a SavedModel, a folder of numbered versions, or a serving root "
        "holding one model: give a pushed version or the model's serving folder."
    )


def image_files(paths: list[str]) -> list[str]:
    """The files given, with every image file under each folder given, in sorted order."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            for directory, _, names in sorted(os.walk(path)):
                files += [
                    os.path.join(directory, name)
                    for name in sorted(names)
                    if name.lower().endswith(IMAGE_EXTENSIONS)
                ]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"No such image file or folder: {path}")
    return files


def predict(model_dir: str, paths: list[str], top_k: int = 3) -> Predictions:
    """The top `top_k` classes of every image that decodes, through `serving_images`.

    A file that does not decode, or is larger than the model accepts, is listed with
    why, not scored: the model would refuse the whole batch around it without saying
    which image it was.
    """
    serve = load_saved_model(model_dir).signatures[SERVING_IMAGES]
    names = read_labels(os.path.join(model_dir, "assets", LABELS_FILENAME))
    max_pixels = max_pixels_of(model_dir)
    images, unreadable = {}, {}
    with native_stderr_without(DECODER_NOISE):  # each bad file is listed with its reason
        for path in paths:
            with open(path, "rb") as f:
                images[path] = f.read()
            why = why_undecodable(images[path], max_pixels)
            if why is not None:
                unreadable[path] = why
    readable = [path for path in paths if path not in unreadable]
    scored = []
    for start in range(0, len(readable), BATCH_SIZE):
        batch = readable[start : start + BATCH_SIZE]
        outputs = serve(**{IMAGES_INPUT: tf.constant([images[path] for path in batch])})
        probabilities = outputs["probabilities"].numpy()
        for path, row in zip(batch, probabilities):
            best = np.argsort(-row, kind="stable")[:top_k]
            scored.append(Prediction(path, [names[i] for i in best], [float(row[i]) for i in best]))
    return Predictions(scored, unreadable)


def write_csv(predictions: list[Prediction], path: str) -> None:
    """One row per image: path, then class_1, p_1, class_2, p_2, ..."""
    top_k = max((len(p.classes) for p in predictions), default=0)
    header = ["path"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"p_{rank}"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for p in predictions:
            row = [p.path]
            for name, probability in zip(p.classes, p.probabilities):
                row += [name, f"{probability:.6f}"]
            writer.writerow(row)


def rest_request(images: list[bytes]) -> dict:
    """The JSON body of TF Serving's REST `:predict` call for the `serving_images` signature.

    Binary inputs travel as {"b64": ...}; TF Serving decodes them to the
    signature's string tensor.
    """
    return {
        "signature_name": SERVING_IMAGES,
        "instances": [
            {IMAGES_INPUT: {"b64": base64.b64encode(image).decode()}} for image in images
        ],
    }
