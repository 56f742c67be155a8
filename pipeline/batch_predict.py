"""Batch prediction with a pushed model through Beam's RunInference.

The same Beam pipeline scores image files (a glob) or TFRecords of the
project's image records on the DirectRunner here and on Dataflow or Flink
unchanged (the runner is the `beam` preset's, settings/beam.py). Each input becomes one
CSV row: its path (or the record's id), the top classes with their
probabilities, and an empty error; an input that cannot be scored becomes a
row with the error instead, never a crash and never a silent drop. A record
that cannot be read is such an input: its row is keyed `file[index]`.

The model answers through its `serving_images` signature, the one TF Serving
exposes, so a batch score is what a served request would return.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.io import fileio
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.options.pipeline_options import PipelineOptions
from google.protobuf.message import DecodeError

from imgclf.imagedata.decode import TOO_LARGE, why_undecodable
from imgclf.imagedata.records import UnreadableInputError, read_labels, read_tfrecord_file
from imgclf.settings.names import ID_KEY, IMAGE_KEY, LABELS_FILENAME
from imgclf.trainer.export import IMAGES_INPUT, SERVING_IMAGES, load_saved_model, max_pixels_of

COUNTERS = "imgclf.batch_predict"
BATCH_SIZE = 64


class ServingImagesHandler(ModelHandler[bytes, PredictionResult, object]):
    """RunInference's model: a SavedModel's `serving_images` signature, encoded images in."""

    def __init__(self, model_dir: str, max_batch_size: int = BATCH_SIZE):
        self._model_dir = model_dir
        self._max_batch_size = max_batch_size

    def load_model(self):
        return load_saved_model(self._model_dir)

    def run_inference(
        self, batch: Sequence[bytes], model, inference_args=None
    ) -> Iterable[PredictionResult]:
        serve = model.signatures[SERVING_IMAGES]
        probabilities = serve(**{IMAGES_INPUT: tf.constant(list(batch))})["probabilities"]
        return [PredictionResult(image, row) for image, row in zip(batch, probabilities.numpy())]

    def batch_elements_kwargs(self):
        return {"max_batch_size": self._max_batch_size}


@dataclass(frozen=True)
class Row:
    key: str  # the file's path, or the record's id
    classes: tuple[str, ...] = ()
    probabilities: tuple[float, ...] = ()
    error: str = ""

    def to_csv(self, top_k: int) -> str:
        cells = [self.key]
        for rank in range(top_k):
            if rank < len(self.classes):
                cells += [self.classes[rank], f"{self.probabilities[rank]:.6f}"]
            else:
                cells += ["", ""]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow([*cells, self.error])
        return out.getvalue()


def csv_header(top_k: int) -> str:
    ranks = [f"class_{rank},p_{rank}" for rank in range(1, top_k + 1)]
    return ",".join(["key", *ranks, "error"])


class _Decodable(beam.DoFn):
    """(key, encoded image) passes on when the model can take it; otherwise it becomes an
    error row (not an image, or larger than the model's max_image_pixels)."""

    ERRORS = "errors"

    def __init__(self, max_pixels: int):
        self._max_pixels = max_pixels

    def process(self, keyed: tuple[str, bytes]) -> Iterator:
        key, encoded = keyed
        why = why_undecodable(encoded, self._max_pixels)
        if why is None:
            yield keyed
            return
        beam.metrics.Metrics.counter(COUNTERS, "errors").inc()
        error = why if why.startswith(TOO_LARGE) else f"not an image: {why}"
        yield beam.pvalue.TaggedOutput(self.ERRORS, Row(key, error=error))


def _file_bytes(readable: fileio.ReadableFile) -> tuple[str, bytes]:
    return readable.metadata.path, readable.read()


class _RecordImages(beam.DoFn):
    """A TFRecord file to (the record's id, or file#digest; its image bytes) per record.

    A record that cannot be read, or is not a tf.Example, becomes an error row keyed
    `file[index]`, and the rest is still scored: a damaged record loses only itself
    (a corrupted file, everything from it on, which TFRecord framing cannot recover).
    """

    ERRORS = "errors"

    def __init__(self, image_key: str):
        self._image_key = image_key

    def process(self, path: str) -> Iterator:
        index = 0  # of the record being read
        try:
            for serialized in read_tfrecord_file(path):
                try:
                    yield self._image(path, serialized)
                except DecodeError as error:
                    yield self._error(f"{path}[{index}]", f"not a tf.Example: {error}")
                index += 1
        except UnreadableInputError as error:
            yield self._error(f"{path}[{index}]", str(error))

    def _image(self, path: str, serialized: bytes) -> tuple[str, bytes]:
        features = tf.train.Example.FromString(serialized).features.feature
        image = features[self._image_key].bytes_list.value
        ids = features[ID_KEY].bytes_list.value
        key = ids[0].decode() if ids else f"{path}#{_digest(serialized)}"
        return key, image[0] if image else b""

    def _error(self, key: str, why: str) -> beam.pvalue.TaggedOutput:
        beam.metrics.Metrics.counter(COUNTERS, "errors").inc()
        return beam.pvalue.TaggedOutput(self.ERRORS, Row(key, error=why))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _ranked(keyed: tuple[str, PredictionResult], names: list[str], top_k: int) -> Row:
    key, result = keyed
    row = np.asarray(result.inference)
    best = np.argsort(-row, kind="stable")[:top_k]
    beam.metrics.Metrics.counter(COUNTERS, "scored").inc()
    return Row(key, tuple(names[i] for i in best), tuple(float(row[i]) for i in best))


def _failed_batch(failure: tuple) -> Iterator[Row]:
    """RunInference's dead letters: a batch the model refused, each input a row of its own."""
    batch, error = failure
    for key, _ in batch:
        beam.metrics.Metrics.counter(COUNTERS, "errors").inc()
        yield Row(key, error=f"the model failed on its batch: {error}")


@dataclass(frozen=True)
class BatchResult:
    output: str
    scored: int
    errors: int


def batch_predict(
    model_dir: str,
    patterns: list[str],
    output: str,
    top_k: int = 3,
    records: bool = False,
    image_key: str = IMAGE_KEY,
    beam_pipeline_args: list[str] | None = None,
) -> BatchResult:
    """Scores every image matched by `patterns` (TFRecords with `records`); one CSV at `output`."""
    for pattern in patterns:
        if not tf.io.gfile.glob(pattern):
            raise FileNotFoundError(f"No file matches {pattern}.")
    names = read_labels(os.path.join(model_dir, "assets", LABELS_FILENAME))
    top_k = min(top_k, len(names))
    pipeline = beam.Pipeline(options=PipelineOptions(beam_pipeline_args or []))
    files = pipeline | "Patterns" >> beam.Create(patterns) | "Match" >> fileio.MatchAll()
    unread = []
    if records:
        read = (
            files
            | "Paths" >> beam.Map(lambda match: match.path)
            | "Records"
            >> beam.ParDo(_RecordImages(image_key)).with_outputs(
                _RecordImages.ERRORS, main="images"
            )
        )
        images, unread = read.images, [read[_RecordImages.ERRORS]]
    else:
        images = files | "Open" >> fileio.ReadMatches() | "Read" >> beam.Map(_file_bytes)
    rows = (images | "Score" >> _Score(model_dir, names, top_k), *unread) | "Rows" >> beam.Flatten()
    (
        rows
        | "Csv" >> beam.Map(lambda row: row.to_csv(top_k))
        | "Write"
        >> beam.io.WriteToText(
            output, num_shards=1, shard_name_template="", header=csv_header(top_k)
        )
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        counter.key.metric.name: counter.committed
        for counter in result.metrics().query()["counters"]
        if counter.key.metric.namespace == COUNTERS
    }
    return BatchResult(output, counters.get("scored", 0), counters.get("errors", 0))


class _Score(beam.PTransform):
    """(key, encoded image) pairs to Rows: ranked classes, or the error that stopped them."""

    def __init__(self, model_dir: str, names: list[str], top_k: int):
        super().__init__()
        self._model_dir, self._names, self._top_k = model_dir, names, top_k

    def expand(self, images):
        decodable = _Decodable(max_pixels_of(self._model_dir))
        checked = images | "Decodable" >> beam.ParDo(decodable).with_outputs(
            _Decodable.ERRORS, main="images"
        )
        handler = KeyedModelHandler(ServingImagesHandler(self._model_dir))
        scored, refused = (
            checked.images | "RunInference" >> RunInference(handler).with_exception_handling()
        )
        return (
            scored | "Rank" >> beam.Map(_ranked, self._names, self._top_k),
            checked[_Decodable.ERRORS],
            refused.failed_inferences | "Refused" >> beam.FlatMap(_failed_batch),
        ) | "AllRows" >> beam.Flatten()
