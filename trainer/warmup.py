"""Warmup requests that travel with each exported model, in TF Serving's format.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (TFRecords of
PredictionLog) when it loads a version, before the version takes traffic, so
the first client does not pay for the graph's lazy initialisation. Here they
are real validation images, for both signatures, once alone and once as a batch.
The serving check before a push (components/serving_check.py) replays the
same file in a server-like process.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from imgclf.trainer.export import (
    EXAMPLES_INPUT,
    EXTRA_ASSETS_DIR,
    IMAGES_INPUT,
    SERVING_DEFAULT,
    SERVING_IMAGES,
)

# The file name TF Serving looks for (tensorflow_serving/servables/tensorflow/saved_model_warmup).
WARMUP_FILE = os.path.join(EXTRA_ASSETS_DIR, "tf_serving_warmup_requests")


def warmup_requests(
    examples: list[bytes], image_key: str
) -> list[prediction_log_pb2.PredictionLog]:
    """Requests for both signatures from serialized tf.Examples: the first alone, then all."""
    images = [
        tf.train.Example.FromString(example).features.feature[image_key].bytes_list.value[0]
        for example in examples
    ]
    logs = []
    for signature, input_name, values in (
        (SERVING_IMAGES, IMAGES_INPUT, images),
        (SERVING_DEFAULT, EXAMPLES_INPUT, examples),
    ):
        for batch in (values[:1], values):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature)
            )
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            logs.append(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
            )
    return logs


def write_warmup_requests(export_dir: str, logs: list[prediction_log_pb2.PredictionLog]) -> None:
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def read_warmup_requests(model_dir: str) -> list[predict_pb2.PredictRequest]:
    """The predict requests a model ships; none if it ships no warmup file."""
    path = os.path.join(model_dir, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return []
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        for record in tf.data.TFRecordDataset(path)
    ]


def answer(loaded, request: predict_pb2.PredictRequest) -> dict[str, tf.Tensor]:
    """Runs one request through the signature it names, as TF Serving's Predict API would."""
    signature = loaded.signatures[request.model_spec.signature_name or SERVING_DEFAULT]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    return signature(**inputs)
