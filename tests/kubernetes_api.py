"""What the stand-ins of Kubernetes API services share (the Training Operator's, in
tests/kubeflow/training_operator.py; KServe's, in tests/kserve_service.py): an API server on
127.0.0.1 that a `kubernetes` client reaches through a kubeconfig, and pods as processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlparse

import pytest

STOP_DEADLINE_SECONDS = 30


class Api(Protocol):
    def handle(self, method: str, path: str, query: dict, body: dict) -> tuple[int, object]:
        """(HTTP status, a JSON answer or text)."""

    def close(self) -> None:
        """Stops what the service started."""


class Cluster:
    """Several services behind one API server, each answering the paths under its prefix,
    as a cluster's API server hands each API group to what serves it (the first prefix that
    matches wins: list a group's before a catch-all's)."""

    def __init__(self, routes: list[tuple[str, Api]]):
        self.routes = routes

    def handle(self, method: str, path: str, query: dict, body: dict) -> tuple[int, object]:
        for prefix, api in self.routes:
            if path.startswith(prefix):
                return api.handle(method, path, query, body)
        return 404, api_status(404, "NotFound", f"{method} {path}")

    def close(self) -> None:
        for _, api in self.routes:
            api.close()


@contextlib.contextmanager
def serving(api: Api, folder: Path, namespace: str) -> Iterator[Api]:
    """`api` served on 127.0.0.1, with a kubeconfig for it in $KUBECONFIG meanwhile."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api = api
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = folder / "kubeconfig"
    path.write_text(
        json.dumps(kubeconfig(f"http://127.0.0.1:{server.server_address[1]}", namespace))
    )
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KUBECONFIG", str(path))
            yield api
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """As a pod is stopped: SIGTERM to each process group, SIGKILL after the deadline."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_DEADLINE_SECONDS)


def api_status(code: int, reason: str, message: str) -> dict:
    """A Kubernetes API error's body (metav1.Status)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "code": code,
        "reason": reason,
        "message": message,
    }


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def kubeconfig(server: str, namespace: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stand-in", "cluster": {"server": server}}],
        "users": [{"name": "task", "user": {"token": "stand-in"}}],
        "contexts": [
            {
                "name": "stand-in",
                "context": {"cluster": "stand-in", "user": "task", "namespace": namespace},
            }
        ],
        "current-context": "stand-in",
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        status, answer = self.server.api.handle(self.command, url.path, parse_qs(url.query), body)
        text = isinstance(answer, str)
        payload = (answer if text else json.dumps(answer)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    api: Api
