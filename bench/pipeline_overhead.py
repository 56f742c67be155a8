"""Wall time of each component of the demo pipeline, the Trainer's share, and a cached rerun.

Runs the demo's pipeline (sample shapes, MobileNetV2 at 64 px, 15 + 15
epochs) twice on this machine with Beam's in-memory runner. The second run
finds the data and the training unchanged, so TFX's cache spares it that
work; the evaluation runs again, because its baseline (the latest blessed
model) is now the first run's model, and the Pusher finds that model already
served and pushes nothing.
The figures come from ML Metadata's execution records, read the way
`imgclf timings --runs N` reads them on any pipeline root. With `--beam-args`
(e.g. the old default, "--direct_running_mode=in_memory --direct_num_workers=1"),
TFX builds its 52 MB package once per Beam component: the time outside the
Trainer shows what that costs.

    .venv/bin/python -m bench.pipeline_overhead [--beam-args "..."]
"""

from __future__ import annotations

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import argparse
import tempfile
import time
from pathlib import Path

import yaml
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from bench.workload import machine
from imgclf.imagedata.sample import write_sample_dataset
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.pipeline.report import outcome_of, timing_lines
from imgclf.pipeline.runs import list_runs
from imgclf.settings import names
from imgclf.settings.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beam-args", default="", help="beam_pipeline_args, shell-style.")
    args = parser.parse_args()
    demo = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        write_sample_dataset(f"{scratch}/data")
        settings = {
            "output_dir": f"{scratch}/outputs",
            "data.root": f"{scratch}/data",
            # Random weights train as fast as the demo's pretrained ones; with no bar to
            # pass, the first run's model is blessed and pushed, as the demo's is.
            "model.weights": "none",
            "evaluation.min_accuracy": 0.0,
            **{f"model.{k}": v for k, v in demo["model"].items() if k != "weights"},
            **{f"training.{k}": v for k, v in demo["training"].items()},
            "beam_pipeline_args": args.beam_args,
        }
        config = load_config(settings)
        write_schema(make_schema(config.data), config.data.schema_path)
        walls = []
        for _ in range(2):
            started = time.perf_counter()
            BeamDagRunner().run(create_pipeline(config))
            walls.append(time.perf_counter() - started)
        runs = list_runs(config.metadata_path, config.pipeline_name)
        outcomes = [outcome_of(run) for run in runs]
    print(f"Machine: {machine()}")
    print("\n".join(timing_lines(runs[:1])))
    print("\n".join(timing_lines(runs)))
    print(
        f"Wall time of the runner: first {walls[0]:.1f} s, cached {walls[1]:.1f} s "
        f"({walls[1] / walls[0]:.1%} of the first)"
    )
    outside = [wall - trained(run) for wall, run in zip(walls, runs, strict=True)]
    print(f"Outside the Trainer: first {outside[0]:.1f} s, cached {outside[1]:.1f} s")
    for run, outcome in zip(runs, outcomes, strict=True):
        pushed = outcome.pushed_to or f"nothing (version {outcome.already_served} already is it)"
        print(f"Run {run.run_id}: blessed {outcome.blessed}, pushed {pushed}")


def trained(run) -> float:
    """The Trainer's seconds in `run`; 0 when it was cached."""
    trainer = run.nodes.get(names.TRAINER)
    return trainer.seconds if trainer is not None and trainer.state == "COMPLETE" else 0.0


if __name__ == "__main__":
    main()
