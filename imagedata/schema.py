"""The curated schema the pipeline validates data against (ImportSchemaGen imports it).

`imgclf make-schema` infers a schema from the train split with TFDV and then
states what an image dataset must hold, which inference cannot know:

- the image feature is in every example, exactly one value, and is an image;
- the label is in every example, exactly one integer in [0, classes - 1],
  categorical (so statistics count each class);
- every other feature found is optional, with any value: extra features are
  allowed.

The file is meant to be read and edited; rerun the command after the classes
change.
"""

from __future__ import annotations

import os
import re
import tempfile

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from imgclf.imagedata.records import (
    UnreadableInputError,
    list_files,
    read_labels,
    read_tfrecord_file,
)
from imgclf.imagedata.spans import newest_span, span_pattern
from imgclf.settings.base import is_remote
from imgclf.settings.data import DataConfig

HEADER = """\
# The curated schema of this image dataset, written by `imgclf make-schema`.
# The pipeline's ExampleValidator checks every split against it. Edit freely:
# e.g. make an optional feature required, or tighten a domain.
"""


def curate(schema: schema_pb2.Schema, data: DataConfig, num_classes: int) -> schema_pb2.Schema:
    """The inferred schema with the image and label rules of an image dataset."""
    curated = schema_pb2.Schema()
    curated.CopyFrom(schema)
    names = {feature.name for feature in curated.feature}
    for required in (data.image_key, data.label_key):
        if required not in names:
            raise ValueError(f"The data has no '{required}' feature; its features are {names}.")
    # Extra features are optional and take any value: inference would pin them to
    # the values seen (every id, say), which new data never matches.
    for feature in curated.feature:
        feature.ClearField("shape")
        feature.ClearField("domain_info")
        feature.presence.min_count = 0
        feature.presence.min_fraction = 0.0
    del curated.string_domain[:]
    image = tfdv.get_feature(curated, data.image_key)
    image.type = schema_pb2.BYTES
    image.image_domain.SetInParent()
    label = tfdv.get_feature(curated, data.label_key)
    label.type = schema_pb2.INT
    label.int_domain.Clear()
    label.int_domain.min = 0
    label.int_domain.max = num_classes - 1
    label.int_domain.is_categorical = True
    for feature in (image, label):
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.value_count.min = 1
        feature.value_count.max = 1
    return curated


# What reading the records and computing the statistics print that asks nothing of a
# user: TensorFlow's end of each dataset, and its own line about a record make-schema names
# itself; Beam's note on a missing optional package; TFDV's deprecated reader.
STATISTICS_NOISE = re.compile(
    r"local_rendezvous\.cc.*Local rendezvous is aborting with status"
    r"|Couldn't find python-snappy"
    r"|tf_record_iterator \(from tensorflow.python.lib.io.tf_record\) is deprecated"
    r"|^Instructions for updating:$|^Use eager execution and: $|^`tf.data.TFRecordDataset\(path\)`$"
)


def make_schema(data: DataConfig) -> schema_pb2.Schema:
    """Infers from the train split's records (of the newest span, or `data.span`), then curates."""
    pattern = span_pattern(data, data.train_pattern, newest_span(data))
    matched = list_files(pattern)
    with_records = _files_with_records(matched)
    # TFDV writes the statistics to a file, in a temp folder of its own it never removes.
    with tempfile.TemporaryDirectory() as scratch:
        statistics = tfdv.generate_statistics_from_tfrecord(
            _pattern_of(with_records, matched, pattern, scratch),
            output_path=os.path.join(scratch, "statistics.tfrecord"),
            stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True),
        )
    inferred = tfdv.infer_schema(statistics, infer_feature_shape=False)
    return curate(inferred, data, len(read_labels(data.labels_path)))


def _files_with_records(files: list[str]) -> list[str]:
    """Reads every record as the pipeline does, so that a bad one is named by file and index:
    TFDV, which reads them again, names neither (a hex dump, or a traceback from Beam).
    The files that hold records; the reader skips the others (a stray README) with a warning."""
    with_records = []
    for path in files:
        for index, serialized in enumerate(read_tfrecord_file(path)):
            try:
                tf.train.Example.FromString(serialized)
            except Exception:  # protobuf raises its own DecodeError
                raise UnreadableInputError(
                    f"{path}: record {index} (counting from 0) is not a tf.Example."
                ) from None
            if index == 0:
                with_records.append(path)
    return with_records


def _pattern_of(files: list[str], matched: list[str], pattern: str, scratch: str) -> str:
    """A pattern TFDV reads `files` by, and nothing else `pattern` matches (`matched`): links
    to them in `scratch` when it also matches files without records, which TFDV would fail on."""
    if files == matched:
        return pattern
    if not files:
        raise UnreadableInputError(f"No file matching {pattern} holds a record.")
    if any(is_remote(path) for path in files):
        skipped = [path for path in matched if path not in files]
        raise UnreadableInputError(
            f"{skipped[0]} holds no records: TFDV cannot skip it; remove it, or narrow the "
            "pattern (data.train_pattern)."
        )
    links = os.path.join(scratch, "records")
    os.makedirs(links)
    for index, path in enumerate(files):
        os.symlink(path, os.path.join(links, f"{index:05d}-{os.path.basename(path)}"))
    return os.path.join(links, "*")


def write_schema(schema: schema_pb2.Schema, path: str) -> None:
    """Writes the text proto (local or remote), renaming into place when complete."""
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    partial = path + ".partial"
    with tf.io.gfile.GFile(partial, "w") as f:
        f.write(HEADER + str(schema))
    tf.io.gfile.rename(partial, path, overwrite=True)
