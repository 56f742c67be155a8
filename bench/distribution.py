"""Images/s of the default strategy against MirroredStrategy over 2 logical CPU devices.

The same global batch, data and network in both; each configuration runs in
a process of its own (logical devices are fixed before TensorFlow starts),
alternating. On one CPU, two replicas cannot be faster: the ratio shows what
the distributed path costs (all-reduce, per-replica batches), which is what a
GPU machine pays on top of its speed-up.

    .venv/bin/python -m bench.distribution [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

IMAGE_SIZE = 96
GLOBAL_BATCH = 32


def child(data_root: str, replicas: int, steps: int) -> None:
    """Prints {"phase1": img/s, "phase2": img/s} for `replicas` CPU replicas."""
    from imgclf.trainer.distribution import use_cpu_replicas

    use_cpu_replicas(replicas)

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

    data = DataConfig(root=data_root)
    training = demo_training(batch_size=GLOBAL_BATCH // replicas, cpu_replicas=replicas)
    strategy = make_strategy(replicas)
    train = train_input(split_files(data, "train"), data, IMAGE_SIZE, GLOBAL_BATCH, training)
    with strategy.scope():
        model = build_model(demo_model(IMAGE_SIZE), NUM_CLASSES, batch_norm_learns=False)
        compile_model(model, training.optimizer, training.phase1_learning_rate)
    speeds = {}
    for phase in ("phase1", "phase2"):
        if phase == "phase2":
            with strategy.scope():
                unfreeze_top(model, training.fine_tune_layers, batch_norm=False)
                compile_model(model, training.optimizer, training.fine_tune_learning_rate)
        images_per_second(model, train.dataset, steps, GLOBAL_BATCH)  # warm-up: tracing
        speeds[phase] = images_per_second(model, train.dataset, steps, GLOBAL_BATCH)
    print(json.dumps({"strategy": type(strategy).__name__, **speeds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    from bench.workload import generated_data, machine

    print(f"Machine: {machine()}")
    print(f"Workload: MobileNetV2 (alpha 0.35) at {IMAGE_SIZE} px, global batch {GLOBAL_BATCH}")
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as scratch:
        root = f"{scratch}/data"
        generated_data(root, 1024, IMAGE_SIZE)
        for round_ in range(args.rounds):
            for replicas in (1, 2) if round_ % 2 == 0 else (2, 1):
                command = [sys.executable, "-m", "bench.distribution", "--child", root]
                output = subprocess.check_output([*command, str(replicas), str(args.steps)])
                results[replicas].append(json.loads(output.splitlines()[-1]))
    for phase in ("phase1", "phase2"):
        default = statistics.median(r[phase] for r in results[1])
        mirrored = statistics.median(r[phase] for r in results[2])
        print(
            f"  {phase}: default strategy {default:6.0f} img/s, MirroredStrategy on 2 CPU "
            f"replicas {mirrored:6.0f} img/s, ratio {mirrored / default:.3f}"
        )
    print(f"  strategies: {results[1][0]['strategy']} and {results[2][0]['strategy']}")


if __name__ == "__main__":
    main()
