"""ServingCheck: the candidate loaded as a server loads it, and asked its warmup requests.

The role of TFX's InfraValidator without a TF Serving binary: a separate
Python process (components/serving_probe.py) loads the SavedModel by its
`serve` tag with TensorFlow's loader (not Keras, not the training code), replays
every request of its `assets.extra/tf_serving_warmup_requests` through the
signature the request names, once as TF Serving does at load and once more, and
reports its load time, the warmup pass and each request's latency after it
(what `serving.max_latency_ms` bounds: a client meets a warmed-up model). A
model that fails to load, fails a request, answers with the wrong batch size,
or is slower than the configured bound, within a deadline, is not blessed,
and the Pusher does not push it. Its output is an InfraBlessing,
as InfraValidator writes, so TFX's own InfraValidator can take its place.
"""

import json
import os
import subprocess
import sys

import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from imgclf.components.key_figure import record_key_figure
from imgclf.settings import names

RESULT_JSON = "serving_check.json"
# The marker files TFX's InfraValidator writes in its blessing (infra_validator/executor.py).
BLESSED_FILE, NOT_BLESSED_FILE = "INFRA_BLESSED", "INFRA_NOT_BLESSED"
PROBE_MODULE = "imgclf.components.serving_probe"
TAIL_LINES = 20


def probe(model_dir: str, timeout_seconds: float) -> dict:
    """The probe's figures, or {"error": why} when it failed or ran out of time.

    Whatever ends the wait (the deadline, or a stop signal raised as RunStopped in
    this thread) kills the probe first: it must not outlive its run.
    """
    with subprocess.Popen(
        [sys.executable, "-m", PROBE_MODULE, model_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        logging.info("Serving check: probe pid %d loads %s", child.pid, model_dir)
        try:
            stdout, stderr = child.communicate(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            return {"error": f"not loaded and answering within {timeout_seconds:g} s"}
        finally:
            child.kill()  # a no-op once it has ended
    if child.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-TAIL_LINES:])
        return {"error": f"the serving process failed (exit {child.returncode}):\n{tail}"}
    return json.loads(stdout.strip().splitlines()[-1])


def judge(result: dict, max_latency_ms: float | None) -> dict:
    """The probe's result with `passed` and, when it did not, `reason`."""
    if "error" in result:
        return {**result, "passed": False, "reason": result["error"]}
    slowest = max(result["latency_ms"], default=0.0)
    if max_latency_ms is not None and slowest > max_latency_ms:
        reason = (
            f"the slowest request took {slowest:.1f} ms (serving.max_latency_ms {max_latency_ms:g})"
        )
        return {**result, "passed": False, "reason": reason}
    return {**result, "passed": True}


def describe(result: dict) -> str:
    """One line: what the check measured, and its verdict."""
    if "error" in result:
        return f"FAILED: {result['reason'].splitlines()[0]}"
    latencies = sorted(result["latency_ms"])
    answered = (
        f"{len(latencies)} warmup requests (first pass {sum(result['warmup_ms']):.0f} ms), "
        f"then median {latencies[len(latencies) // 2]:.1f} ms, slowest {latencies[-1]:.1f} ms"
        if latencies
        else "no warmup requests shipped (serving.warmup_images is 0)"
    )
    verdict = "passed" if result["passed"] else f"FAILED: {result['reason']}"
    return f"loaded in {result['load_seconds']:.1f} s; {answered}; {verdict}"


def read_result(blessing_uri: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(blessing_uri, RESULT_JSON)) as f:
        return json.load(f)


@tfx.dsl.components.component
def ServingCheck(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
    timeout_seconds: tfx.dsl.components.Parameter[float],
    max_latency_ms: tfx.dsl.components.Parameter[float],
) -> None:
    """`max_latency_ms`: 0 for no bound on latency."""
    result = judge(
        probe(path_utils.serving_model_dir(model.uri), timeout_seconds), max_latency_ms or None
    )
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, RESULT_JSON), "w") as f:
        json.dump(result, f, indent=2)
    marker = BLESSED_FILE if result["passed"] else NOT_BLESSED_FILE
    with tf.io.gfile.GFile(os.path.join(blessing.uri, marker), "w") as f:
        f.write("")  # GFile creates a file at its first write
    blessing.set_int_custom_property(names.BLESSED_PROPERTY, int(result["passed"]))
    record_key_figure(blessing, names.SERVING_CHECK, describe(result))
