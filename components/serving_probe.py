"""The serving check's separate process: `python -m imgclf.components.serving_probe MODEL_DIR`.

Loads the SavedModel by its `serve` tag, as TF Serving does, and answers each
warmup request the model ships through the signature the request names:
once as warmup (TF Serving replays them at load, before any client), then
again, as a client would find the model. Prints one JSON line: the load time,
each request's time in the warmup pass and its latency after it. Any failure
(a model that does not load, a missing signature, a wrong answer) exits
non-zero with its error on stderr.
"""

from __future__ import annotations

import json
import sys
import time

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import tensorflow as tf

from imgclf.trainer.export import SERVING_DEFAULT, SERVING_IMAGES
from imgclf.trainer.warmup import answer, read_warmup_requests

SERVED_SIGNATURES = (SERVING_DEFAULT, SERVING_IMAGES)


def measure(model_dir: str) -> dict:
    started = time.perf_counter()
    loaded = tf.saved_model.load(model_dir, tags=["serve"])
    load_seconds = time.perf_counter() - started
    missing = [name for name in SERVED_SIGNATURES if name not in loaded.signatures]
    if missing:
        raise ValueError(f"{model_dir} has no signature {', '.join(missing)}")
    requests = read_warmup_requests(model_dir)
    warmup = [_timed(loaded, request) for request in requests]
    latencies = [_timed(loaded, request) for request in requests]
    return {"load_seconds": load_seconds, "warmup_ms": warmup, "latency_ms": latencies}


def _timed(loaded, request) -> float:
    """Milliseconds to answer `request`, after checking the answer has a row per input."""
    batch = {proto.tensor_shape.dim[0].size for proto in request.inputs.values()}.pop()
    started = time.perf_counter()
    outputs = answer(loaded, request)
    milliseconds = (time.perf_counter() - started) * 1000
    rows = int(outputs["probabilities"].shape[0])
    if rows != batch:
        raise ValueError(
            f"{request.model_spec.signature_name} answered {rows} rows for {batch} inputs"
        )
    return milliseconds


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
