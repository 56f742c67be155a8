"""Choosing the tf.distribute strategy and numeric precision the training runs under.

- Several workers in TF_CONFIG (how Vertex AI Training and the Kubeflow
  training operator launch multi-machine jobs): MultiWorkerMirroredStrategy.
- Else, GPUs: MirroredStrategy over all of them.
- Else, `cpu_replicas` > 1: MirroredStrategy over that many logical CPU
  devices (how the tests run the distributed path without GPUs).
- Else the default strategy, on one device.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging


def use_cpu_replicas(count: int) -> None:
    """Splits the CPU into `count` logical devices, so MirroredStrategy runs without GPUs.

    TensorFlow fixes its devices when it first runs an op, so a process that
    wants CPU replicas calls this at start-up; calling it again later with the
    same count is harmless.
    """
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"training.cpu_replicas={count} needs {count} logical CPU devices, but TensorFlow "
            "already initialised its devices in this process. Call "
            "imgclf.trainer.distribution.use_cpu_replicas() before TensorFlow runs any op "
            "(local_runner.py does)."
        ) from error


def _cluster() -> tuple[dict, dict]:
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return tf_config.get("cluster", {}), tf_config.get("task", {})


def num_workers() -> int:
    """Machines in TF_CONFIG's cluster (chief and workers); 1 without TF_CONFIG."""
    cluster, _ = _cluster()
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def cluster_layout() -> dict:
    """This process's place in the cluster: its task, and the machines of each type."""
    cluster, task = _cluster()
    return {
        "task": f"{task.get('type', 'chief')}:{task.get('index', 0)}",
        "workers": num_workers(),
        "machines": {kind: len(addresses) for kind, addresses in cluster.items()} or {"chief": 1},
    }


def is_chief() -> bool:
    """Whether this process writes the shared outputs: the chief, else worker 0."""
    cluster, task = _cluster()
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index", 0) == 0


def make_strategy(cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """The strategy for this process; create it once, before building any model."""
    if num_workers() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif tf.config.list_physical_devices("GPU"):
        strategy = tf.distribute.MirroredStrategy()
    elif cpu_replicas > 1:
        use_cpu_replicas(cpu_replicas)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")][:cpu_replicas]
        # Collective all-reduce keys collide when a process trains a second model with
        # another MirroredStrategy (as a test session does); on one CPU, reducing on
        # one device is as fast and has no such state.
        strategy = tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    else:
        # The default strategy: one device (OneDeviceStrategy lacks BackupAndRestore support).
        strategy = tf.distribute.get_strategy()
    layout = cluster_layout()
    logging.info(
        "Training with %s over %d replica(s); this is %s of %d worker(s) %s.",
        strategy_name(strategy),
        strategy.num_replicas_in_sync,
        layout["task"],
        layout["workers"],
        layout["machines"],
    )
    return strategy


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name: MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return "DefaultStrategy"


def precision_policy(mixed_precision: bool, has_gpu: bool) -> str:
    """'mixed_float16' when asked for on GPUs; CPUs gain nothing from float16."""
    if mixed_precision and not has_gpu:
        logging.warning("training.mixed_precision is ignored without a GPU.")
    return "mixed_float16" if mixed_precision and has_gpu else "float32"
