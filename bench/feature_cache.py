"""Phase 1 (feature extraction) for 10 epochs, with and without the feature cache.

The same data, network, batch and seed both times, augmentation off (the
cache's default case); the cached time includes computing the features.
Goal: at least 5x faster with caching.

    .venv/bin/python -m bench.feature_cache [--image-size 128] [--images 2048]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import tf_keras as keras

from bench.workload import (
    NO_AUGMENTATION,
    NUM_CLASSES,
    demo_model,
    demo_training,
    generated_data,
    machine,
    split_files,
)
from imgclf.trainer.data import eval_input, train_input
from imgclf.trainer.distribution import make_strategy
from imgclf.trainer.features import cache_phase1
from imgclf.trainer.model import build_model
from imgclf.trainer.schedule import train_two_phases

GOAL = 5.0


def phase1_seconds(
    data, model_config, training, work_dir: str, cached: bool
) -> tuple[float, float]:
    """Wall time of phase 1, and of that the time spent computing cached features."""
    strategy = make_strategy()
    keras.utils.set_random_seed(training.seed)
    with strategy.scope():
        model = build_model(model_config, NUM_CLASSES, batch_norm_learns=False)
    size, batch = model_config.image_size, training.batch_size
    train = train_input(split_files(data, "train"), data, size, batch, training)
    evals = eval_input(split_files(data, "eval"), data, size, batch)

    def cache():
        return cache_phase1(
            model,
            split_files(data, "train"),
            split_files(data, "eval"),
            data,
            training,
            train,
            evals,
            f"{work_dir}/cache",
        )

    started = time.perf_counter()
    (phase1,) = train_two_phases(
        model, train, evals, training, strategy, work_dir, cache_phase1=cache if cached else None
    )
    return time.perf_counter() - started, phase1.feature_cache_seconds or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    training = demo_training(phase1_epochs=args.epochs, phase2_epochs=0, **NO_AUGMENTATION)
    model_config = demo_model(args.image_size)
    with tempfile.TemporaryDirectory() as scratch:
        data = generated_data(f"{scratch}/data", args.images, args.image_size, eval_images=256)
        plain, _ = phase1_seconds(data, model_config, training, f"{scratch}/a", False)
        cached, caching = phase1_seconds(data, model_config, training, f"{scratch}/b", True)
    print(f"Machine: {machine()}")
    print(
        f"Workload: phase 1, {args.epochs} epochs, MobileNetV2 (alpha 0.35) at "
        f"{args.image_size} px, batch {training.batch_size}, {args.images} train, 256 eval images"
    )
    print(f"  through the frozen base: {plain:7.1f} s")
    print(
        f"  on cached features:      {cached:7.1f} s "
        f"(of which computing the features: {caching:.1f} s)"
    )
    speedup = plain / cached
    verdict = "meets" if speedup >= GOAL else "misses"
    print(f"  speed-up: {speedup:.1f}x ({verdict} the goal of {GOAL:.0f}x)")


if __name__ == "__main__":
    main()
