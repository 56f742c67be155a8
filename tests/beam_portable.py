"""Beam's portable path on this machine: how Dataflow Runner v2, Flink and Spark run Python.

`portable_runner()` starts, as separate processes, Beam's own Python job service
(apache_beam/runners/portability/local_job_service_main.py, a PortableRunner's
job endpoint) and an EXTERNAL worker pool
(apache_beam/runners/worker/worker_pool_main.py), and yields the Beam arguments of
the project's `portable` preset pointed at them. A pipeline's DoFns are then
pickled, sent through the job service and run by SDK harnesses in worker
processes that share nothing with the launching process.

The pool starts each worker through `--container_executable`, as the pool of a
Beam SDK container does (`/opt/apache/beam/boot --worker_pool`, the pool a Flink or
Spark cluster on Kubernetes runs beside its task managers): this module, run as
a script, stands in for the container's boot program
(sdks/python/container/boot.go: it asks the provision service, as the worker
its id names, for the pipeline's options and endpoints, puts them in PIPELINE_OPTIONS,
CONTROL_API_SERVICE_DESCRIPTOR, LOGGING_API_SERVICE_DESCRIPTOR and WORKER_ID,
and runs `python -m apache_beam.runners.worker.sdk_worker_main`, which imports
the pipeline's `--beam_plugins` before any bundle). It does not install staged
packages: the project's image has the project installed, and its presets stage none.

The workers' environment is the test's without TF_USE_LEGACY_KERAS, as on a worker
whose image does not set it: the Keras choice must be made in the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes_api import free_ports, stop_processes

if TYPE_CHECKING:  # run as the boot program, this module must not import imgclf (Keras 2)
    from imgclf.settings.beam import BeamConfig

START_DEADLINE_SECONDS = 60
# What `beam.image` names in the tests: the EXTERNAL environment never pulls it.
IMAGE = "imgclf-portable-test"


@contextlib.contextmanager
def portable_runner(folder: Path) -> Iterator[BeamConfig]:
    """A job service and a worker pool; yields the `beam` preset that uses them."""
    from imgclf.settings.beam import BeamConfig

    job_port, pool_port = free_ports(2)
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    # The pool starts `python` from PATH: this interpreter's.
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    services = [
        [
            "-m",
            "apache_beam.runners.portability.local_job_service_main",
            f"--port={job_port}",
            f"--staging_dir={folder / 'staging'}",
        ],
        [
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={pool_port}",
            f"--container_executable={folder / 'boot'}",
        ],
    ]
    boot = folder / "boot"
    boot.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} "$@"\n')
    boot.chmod(0o755)
    processes = []
    try:
        for index, arguments in enumerate(services):
            log = open(folder / f"service-{index}.log", "wb")  # noqa: SIM115 (the process's)
            processes.append(
                subprocess.Popen(
                    [sys.executable, *arguments],
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        for port, process in zip((job_port, pool_port), processes, strict=True):
            _wait_for_port(port, process)
        yield BeamConfig(
            runner="portable",
            job_endpoint=f"127.0.0.1:{job_port}",
            environment="EXTERNAL",
            worker_pool=f"127.0.0.1:{pool_port}",
            image=IMAGE,
        )
    finally:
        stop_processes(processes)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        # A connection refused returns at once; wait for the process instead of spinning.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)
    raise RuntimeError(f"{process.args} did not listen on {port} in {START_DEADLINE_SECONDS} s")


def boot(argv: list[str]) -> None:
    """The SDK container's boot program: the worker's options from the provision service."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format

    parser = argparse.ArgumentParser()
    for name in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--control_endpoint", required=True)
    arguments = parser.parse_args(argv)
    with grpc.insecure_channel(arguments.provision_endpoint) as channel:
        info = (
            beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
            .GetProvisionInfo(
                beam_provision_api_pb2.GetProvisionInfoRequest(),
                metadata=[("worker_id", arguments.id)],
                timeout=30,
            )
            .info
        )
    control = info.control_endpoint.url or arguments.control_endpoint
    logging_endpoint = info.logging_endpoint.url or arguments.logging_endpoint
    os.environ.update(
        {
            "WORKER_ID": arguments.id,
            "PIPELINE_OPTIONS": json.dumps(json_format.MessageToDict(info.pipeline_options)),
            "CONTROL_API_SERVICE_DESCRIPTOR": f'url: "{control}"',
            "LOGGING_API_SERVICE_DESCRIPTOR": f'url: "{logging_endpoint}"',
            "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
        }
    )
    # The pool reads no output of its workers' (it pipes their stdout and never reads it).
    os.dup2(2, 1)
    os.execv(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"])


if __name__ == "__main__":
    boot(sys.argv[1:])
