"""Choosing the tf.distribute strategy the whole training runs under."""

from __future__ import annotations

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
            "trainer.distribution.use_cpu_replicas() before TensorFlow runs any op "
            "(local_runner.py does)."
        ) from error


def make_strategy(cpu_replicas: int = 1) -> tf.distribute.Strategy:
    """MirroredStrategy over every local GPU, else over `cpu_replicas` CPU devices.

    With neither, a one-device strategy.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
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
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    logging.info(
        "Training with %s over %d replica(s).",
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy
