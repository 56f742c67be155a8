"""The data steps on 10,000 small images: Beam's DirectRunner in memory against the portable path.

Runs the pipeline's data half (`imgclf validate`'s: ImportExampleGen, the
ImageValidator, StatisticsGen and the light steps around them) twice on the
same generated images (32 px PNGs, 8,000 train and 2,000 eval):

- direct: the default, Beam's DirectRunner in the run's own process;
- portable: the `portable` preset through Beam's own job service and an EXTERNAL
  worker pool of 2 workers in separate processes (tests/beam_portable.py), how
  Dataflow Runner v2, Flink and Spark run the project's Python.

It prints each Beam step's wall time side by side (from ML Metadata), the cost
per record, and what a million images would cost at that rate (an estimate:
linear in the records, divided by the workers, which a real cluster only
approaches).

    .venv/bin/python -m bench.beam_runners [--images 10000]
"""

from __future__ import annotations

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import argparse
import sys
import tempfile
import time
from pathlib import Path

from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from bench.workload import machine
from imgclf.imagedata.sample import DEFAULT_CLASSES, write_sample_dataset
from imgclf.imagedata.schema import make_schema, write_schema
from imgclf.pipeline.pipeline import create_pipeline
from imgclf.pipeline.runs import latest_run
from imgclf.settings import names
from imgclf.settings.config import load_config
from imgclf.settings.data import DataConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
# The portable path's stand-in services are the tests' (tests/beam_portable.py).
sys.path.insert(0, str(REPO_ROOT / "tests"))
from beam_portable import portable_runner  # noqa: E402

BEAM_STEPS = (names.EXAMPLE_GEN, names.IMAGE_VALIDATOR, names.STATISTICS_GEN)
WORKERS = 2
MILLION = 1_000_000


def _run(data: str, output_dir: str, settings: dict) -> tuple[dict[str, float], float]:
    config = load_config({"output_dir": output_dir, "data.root": data, **settings})
    started = time.monotonic()
    BeamDagRunner().run(create_pipeline(config, validate_only=True))
    wall = time.monotonic() - started
    run = latest_run(config.metadata_path, config.pipeline_name)
    return {step: run.nodes[step].seconds for step in BEAM_STEPS}, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    per_class = args.images // len(DEFAULT_CLASSES)
    print(machine())
    with tempfile.TemporaryDirectory() as scratch:
        data = f"{scratch}/data"
        counts = write_sample_dataset(
            data, train_per_class=per_class * 4 // 5, eval_per_class=per_class // 5, image_size=32
        )
        write_schema(make_schema(DataConfig(root=data)), DataConfig(root=data).schema_path)
        images = sum(counts.values())
        direct, direct_wall = _run(data, f"{scratch}/direct", {})
        with portable_runner(Path(scratch)) as preset:
            portable, portable_wall = _run(
                data,
                f"{scratch}/portable",
                {
                    "beam": preset.model_dump(),
                    "beam_pipeline_args": [f"--direct_num_workers={WORKERS}"],
                },
            )
    walls = f"direct {direct_wall:.0f} s, portable {portable_wall:.0f} s"
    print(f"\n{images} images; the data half: {walls}")
    print(f"{'step':<18}{'direct s':>10}{'ms/image':>10}{'portable s':>12}{'ms/image':>10}")
    for step in BEAM_STEPS:
        print(
            f"{step:<18}{direct[step]:>10.1f}{1000 * direct[step] / images:>10.2f}"
            f"{portable[step]:>12.1f}{1000 * portable[step] / images:>10.2f}"
        )
    direct_total, portable_total = sum(direct.values()), sum(portable.values())
    print(f"{'Beam steps':<18}{direct_total:>10.1f}{'':>10}{portable_total:>12.1f}")
    print(f"\nA million images at these rates (linear in the records; {WORKERS} portable workers):")
    print(f"  direct, one process:       {direct_total / images * MILLION / 3600:.1f} h")
    print(f"  portable, {WORKERS} workers:        {portable_total / images * MILLION / 3600:.1f} h")
    per_worker_hours = portable_total * WORKERS / images * MILLION / 3600
    print(
        f"  a cluster of N such workers: about {per_worker_hours:.1f} h / N "
        "(worker-hours as measured here; Dataflow or Flink add their start-up and shuffle)"
    )


if __name__ == "__main__":
    main()
