"""Images/s of the Trainer's network on one worker process against two (MultiWorkerMirrored).

The same global batch, data and network in both; the two workers are local
processes with TF_CONFIG on 127.0.0.1 ports, as the Training Operator or
Vertex AI start them on separate machines. On one machine's two cores two
workers cannot be faster: the ratio is the overhead of the multi-worker path
(collective all-reduce over gRPC, per-worker batches, coordination).

It then prints a scaling model for N workers with G GPUs each (see
scaling_model): from the measured step time, and steps a GPU might take, and
the all-reduce of the trainable weights' gradients over 1, 10 and 100 Gbit/s
links, the efficiency at N workers and the N from which the link, not
compute, bounds a step.

    .venv/bin/python -m bench.multi_worker [--rounds 3] [--steps 16]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

IMAGE_SIZE = 96
GLOBAL_BATCH = 32
PROCESS_DEADLINE_SECONDS = 1800
GBIT = 1e9 / 8  # bytes per second in one Gbit/s


def child(data_root: str, steps: int) -> None:
    """Prints {"images_per_second": ..., "trainable": ..., "replicas": ...} as this worker saw."""
    from bench.workload import (
        NUM_CLASSES,
        demo_model,
        demo_training,
        images_per_second,
        split_files,
    )
    from imgclf.settings.data import DataConfig
    from imgclf.trainer.data import train_input
    from imgclf.trainer.distribution import make_strategy
    from imgclf.trainer.model import build_model, compile_model, unfreeze_top
    from imgclf.trainer.schedule import count_params

    strategy = make_strategy()
    data = DataConfig(root=data_root)
    training = demo_training(batch_size=GLOBAL_BATCH // strategy.num_replicas_in_sync)
    train = train_input(split_files(data, "train"), data, IMAGE_SIZE, GLOBAL_BATCH, training)
    with strategy.scope():
        model = build_model(demo_model(IMAGE_SIZE), NUM_CLASSES, batch_norm_learns=False)
        unfreeze_top(model, training.fine_tune_layers, batch_norm=False)
        compile_model(model, training.optimizer, training.fine_tune_learning_rate)
    images_per_second(model, train.dataset, steps, GLOBAL_BATCH)  # warm-up: tracing
    speed = images_per_second(model, train.dataset, steps, GLOBAL_BATCH)
    result = {
        "images_per_second": speed,
        "trainable": count_params(model.trainable_weights),
        "replicas": strategy.num_replicas_in_sync,
    }
    print(json.dumps(result), flush=True)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(root: str, workers: int, steps: int) -> dict:
    """Starts `workers` processes (a chief and workers-1 workers); returns the chief's figures."""
    command = [sys.executable, "-m", "bench.multi_worker", "--child", root, str(steps)]
    hosts = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    cluster = {"chief": hosts[:1], **({"worker": hosts[1:]} if workers > 1 else {})}
    processes = []
    for index, kind in enumerate(["chief"] + ["worker"] * (workers - 1)):
        env = {}
        if workers > 1:
            task = {"type": kind, "index": 0 if kind == "chief" else index - 1}
            env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        processes.append(
            subprocess.Popen(
                command,
                env={**_environment(), **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=PROCESS_DEADLINE_SECONDS)[0] for p in processes]
    for process, output in zip(processes, outputs):
        if process.returncode:
            raise RuntimeError(f"a worker exited {process.returncode}: {output[-2000:]}")
    return json.loads(outputs[0].splitlines()[-1])


def _environment() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def scaling_model(step_seconds: float, trainable: int) -> list[str]:
    """When the all-reduce, not compute, bounds a step, for N workers of G GPUs each.

    A step's time is its compute on one replica's batch plus the all-reduce of
    the gradients: a ring all-reduce sends and receives 2 (N - 1) / N of them
    over each worker's link (within a worker, G GPUs reduce over NVLink or
    PCIe first, much faster than the network). With the per-replica batch
    fixed, G leaves both terms as they are and multiplies images/s by G.
    """
    gradient_bytes = trainable * 4
    computes = {"measured here (CPU)": step_seconds, "a GPU, say": 0.010, "a fast GPU, say": 0.002}
    lines = [
        f"Scaling model: {gradient_bytes / 1e6:.1f} MB of gradients a step "
        f"({trainable:,} trainable weights x 4 B); efficiency = compute / (compute + all-reduce)."
    ]
    for label, compute in computes.items():
        for gbits in (1, 10, 100):
            link = gbits * GBIT
            cells = []
            for workers in (2, 8, 64):
                comm = 2 * (workers - 1) / workers * gradient_bytes / link
                cells.append(f"N={workers}: {compute / (compute + comm):.2f}")
            bound = next(
                (n for n in range(2, 1025) if 2 * (n - 1) / n * gradient_bytes / link > compute),
                None,
            )
            where = f"link-bound from N = {bound}" if bound else "compute-bound at any N"
            lines.append(
                f"  step compute {compute * 1000:5.0f} ms ({label}), {gbits:3d} Gbit/s: "
                f"{', '.join(cells)}; {where}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

        child(args.child[0], int(args.child[1]))
        return
    from bench.workload import generated_data, machine

    print(f"Machine: {machine()}")
    print(
        f"Workload: MobileNetV2 (alpha 0.35) at {IMAGE_SIZE} px, fine-tuning, global batch "
        f"{GLOBAL_BATCH}, {args.steps} steps a round"
    )
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as scratch:
        root = f"{scratch}/data"
        generated_data(root, 1024, IMAGE_SIZE)
        for round_ in range(args.rounds):
            for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                results[workers].append(run_workers(root, workers, args.steps))
    one = statistics.median(r["images_per_second"] for r in results[1])
    two = statistics.median(r["images_per_second"] for r in results[2])
    print(
        f"  one worker process: {one:6.1f} img/s; two worker processes "
        f"(MultiWorkerMirroredStrategy, {results[2][0]['replicas']} replicas): {two:6.1f} img/s; "
        f"ratio {two / one:.3f}"
    )
    for line in scaling_model(GLOBAL_BATCH / one, results[1][0]["trainable"]):
        print(line)


if __name__ == "__main__":
    main()
