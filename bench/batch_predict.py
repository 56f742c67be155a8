"""Batch prediction: Beam's RunInference (`imgclf batch-predict`) vs `imgclf predict`, 1,000 images.

The demo's network (MobileNetV2, alpha 0.35, 64 px; its weights do not
change the cost) exported as the Trainer exports it, and 1,000 sample-shape
PNG files. Each way scores every file once through the `serving_images`
signature; the figures are wall time, model load included, and images per
second. Beam runs on the DirectRunner: in memory with one worker (the
project's default `beam_pipeline_args`), then two worker processes.

    .venv/bin/python -m bench.batch_predict
"""

from __future__ import annotations

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import argparse
import tempfile
import time
from pathlib import Path

from bench.workload import machine
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.pipeline.batch_predict import batch_predict
from imgclf.pipeline.predict import predict
from imgclf.settings.data import DataConfig
from imgclf.settings.model import ModelConfig
from imgclf.trainer.export import export_model
from imgclf.trainer.model import build_model

RUNNERS = {
    "DirectRunner, in memory, 1 worker": [
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
    ],
    "DirectRunner, 2 worker processes": [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = _exported_model(f"{scratch}/serving/1")
        files = _image_files(Path(scratch) / "images", args.images)
        print(machine())
        print(f"{len(files)} PNG files, {len(DEFAULT_CLASSES)} classes, MobileNetV2 0.35 at 64 px")
        started = time.perf_counter()
        scored = len(predict(model_dir, files).scored)
        _report("imgclf predict (one process, batches of 64)", scored, started)
        for name, beam_args in RUNNERS.items():
            started = time.perf_counter()
            result = batch_predict(
                model_dir,
                [f"{scratch}/images/*.png"],
                f"{scratch}/rows.csv",
                beam_pipeline_args=beam_args,
            )
            _report(f"imgclf batch-predict, {name}", result.scored, started)


def _exported_model(export_dir: str) -> str:
    config = ModelConfig(base_model="MobileNetV2", alpha=0.35, image_size=64, weights="none")
    model = build_model(config, num_classes=len(DEFAULT_CLASSES), batch_norm_learns=False)
    max_pixels = DataConfig().max_image_pixels
    export_model(model, export_dir, list(DEFAULT_CLASSES), 64, "image", {"phases": []}, max_pixels)
    return export_dir


def _image_files(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    per_class = -(-count // len(DEFAULT_CLASSES))
    records = generate_split(DEFAULT_CLASSES, "eval", per_class, image_format="png")
    files = []
    for index, record in zip(range(count), records):
        path = folder / f"{index:04d}.png"
        path.write_bytes(record.image)
        files.append(str(path))
    return files


def _report(name: str, scored: int, started: float) -> None:
    seconds = time.perf_counter() - started
    print(f"{name}: {scored} images in {seconds:.1f} s, {scored / seconds:.0f} images/s")


if __name__ == "__main__":
    main()
