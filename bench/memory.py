"""Peak resident memory of a training run over 1,000 and 10,000 generated 224 x 224 images.

Each count trains in a process of its own: one phase-1 epoch over every
image with the project's input and the demo's network, at 224 px. The input
streams from the record files, so the peak should not grow with the image
count (10,000 decoded images would take 10,000 x 224 x 224 x 3 x 4 bytes =
5.6 GiB as float pixels).

    .venv/bin/python -m bench.memory [--counts 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile

IMAGE_SIZE = 224


def child(data_root: str, count: int) -> None:
    """Trains one epoch over the first `count` images; prints the peak RSS as JSON."""
    from bench.workload import NUM_CLASSES, demo_model, demo_training, split_files
    from imgclf.settings.data import DataConfig
    from imgclf.trainer.data import train_input
    from imgclf.trainer.model import build_model, compile_model

    data = DataConfig(root=data_root)
    training = demo_training(steps_per_epoch=count // 32)
    model = build_model(demo_model(IMAGE_SIZE), NUM_CLASSES, batch_norm_learns=False)
    compile_model(model, training.optimizer, training.phase1_learning_rate)
    before = peak_mb()
    train = train_input(split_files(data, "train"), data, IMAGE_SIZE, 32, training)
    model.fit(train.dataset, steps_per_epoch=train.steps, epochs=1, verbose=0)
    print(json.dumps({"count": count, "peak_mb": peak_mb(), "model_built_mb": before}))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=2, metavar=("DATA_ROOT", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    from bench.workload import generated_data, machine

    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory() as scratch:
        for count in args.counts:
            root = f"{scratch}/{count}"
            generated_data(root, count, IMAGE_SIZE)
            command = [sys.executable, "-m", "bench.memory", "--child", root, str(count)]
            result = json.loads(subprocess.check_output(command).splitlines()[-1])
            print(
                f"  {count:6d} images at {IMAGE_SIZE} px: peak RSS {result['peak_mb']:7.0f} MB "
                f"(after building the model: {result['model_built_mb']:.0f} MB)"
            )


if __name__ == "__main__":
    main()
