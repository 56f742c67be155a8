"""Ingestion: ImportExampleGen's job, with errors that name the file and record at fault.

TFX's ImportExampleGen reads TFRecord files through Beam's ReadFromTFRecord,
which picks the compression from the file name and, on a corrupted record,
fails with a dump of the record's bytes and no file name. This executor reads
each file itself: a GZIP file not named *.gz (or the reverse) and a record
with a bad checksum stop the run with the file's path and the record's index;
a file with no records is logged by name and adds nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs

GZIP_MAGIC = b"\x1f\x8b"


class UnreadableInputError(ValueError):
    """An input file cannot be read as TFRecords; the message says which and why."""


def read_tfrecord_file(path: str) -> Iterator[bytes]:
    """The serialized records of one TFRecord file, GZIP-compressed if and only if *.gz."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(2)
    if not head:
        logging.warning("Input file %s is empty: it holds no records.", path)
        return
    gzipped, named_gz = head == GZIP_MAGIC, path.endswith(".gz")
    if gzipped and not named_gz:
        raise UnreadableInputError(
            f"{path} is GZIP-compressed but its name does not end in .gz; rename it to "
            f"{os.path.basename(path)}.gz so that it is read as compressed."
        )
    if named_gz and not gzipped:
        raise UnreadableInputError(
            f"{path} is named *.gz but is not GZIP-compressed; remove the .gz from its name."
        )
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP" if gzipped else ""):
            yield record.numpy()
            count += 1
    except tf.errors.OpError as error:
        raise UnreadableInputError(
            f"{path}: record {count} (counting from 0) cannot be read: the file is corrupted "
            f"(bad checksum or cut short) from there on; {count} record(s) before it were "
            f"read. TensorFlow said: {error.message}"
        ) from None
    if count == 0:
        logging.warning("Input file %s holds no records.", path)


def list_files(pattern: str) -> list[str]:
    files = sorted(fileio.glob(pattern))
    if not files:
        raise FileNotFoundError(f"Input pattern {pattern} matches no file.")
    return files


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _ReadTFRecordFiles(
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.PCollection:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (
        pipeline
        | "ListFiles" >> beam.Create(list_files(pattern))
        | "Distribute" >> beam.Reshuffle()
        | "ReadRecords" >> beam.FlatMap(read_tfrecord_file)
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ReadTFRecordFiles


def import_example_gen(
    input_base: str, input_config: tfx.proto.Input, **kwargs
) -> FileBasedExampleGen:
    """An ExampleGen over TFRecord files of tf.Examples, reading them with this executor."""
    return FileBasedExampleGen(
        input_base=input_base,
        input_config=input_config,
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor),
        **kwargs,
    ).with_id("ImportExampleGen")
