"""The model commands: `imgclf pretrain-backbone`, `scratch-baseline`, `predict` and
`batch-predict`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from imgclf.cli.options import add_command, at_least_one
from imgclf.settings.base import ConfigError
from imgclf.settings.config import load_config

SCRATCH_BASELINE_FILE = "scratch_baseline.json"
PREDICTIONS_CSV = "predictions.csv"


def add_commands(commands) -> None:
    add_command(
        commands,
        "pretrain-backbone",
        pretrain_backbone_command,
        "Pretrain the configured base on sample shapes; save it at model.weights.",
    )
    add_command(
        commands,
        "scratch-baseline",
        _scratch_baseline,
        "Train the configured network from random weights at the pipeline's budget.",
    )
    predict = add_command(
        commands, "predict", _predict, "Top-k classes of image files with a pushed model.", False
    )
    predict.add_argument("model", help="A pushed version, or the serving folder (latest version).")
    predict.add_argument("images", nargs="+", help="Image files, or folders of images.")
    predict.add_argument("--top-k", type=at_least_one, default=3)
    predict.add_argument(
        "--csv", help=f"Write a CSV here (default when a folder is given: {PREDICTIONS_CSV})."
    )
    batch = add_command(
        commands,
        "batch-predict",
        _batch_predict,
        "Score image files (or TFRecords, --records) with a pushed model through Beam's "
        "RunInference on the configured Beam runner (beam preset); one CSV row per input, "
        "an error row for any that cannot be scored.",
    )
    batch.add_argument("model", help="A pushed version, or the serving folder (latest version).")
    batch.add_argument("patterns", nargs="+", help="Globs of image files, or of TFRecord files.")
    batch.add_argument("--out", required=True, help="The CSV to write.")
    batch.add_argument("--records", action="store_true", help="The globs match TFRecord files.")
    batch.add_argument("--top-k", type=at_least_one, default=3)


def pretrain_backbone_command(args: argparse.Namespace) -> None:
    from imgclf.trainer.pretrain import pretrain_backbone

    model = load_config().model
    if model.weights in ("imagenet", "none"):
        raise ConfigError("model.weights must be a file path to pretrain into.")
    result = pretrain_backbone(model, model.weights)
    print(
        f"Pretrained {model.base_model} on {', '.join(result['classes'])}: "
        f"source-task eval accuracy {result['eval_accuracy']:.3f} "
        f"in {result['seconds']:.0f}s; saved {model.weights}"
    )


def _scratch_baseline(args: argparse.Namespace) -> None:
    result, path = _measured_scratch_baseline()
    print(
        f"From scratch: eval accuracy {result['eval_accuracy']:.3f} after {result['epochs']} "
        f"epochs ({result['seconds']:.0f}s); saved {path}"
    )


def _measured_scratch_baseline() -> tuple[dict, str]:
    """What the network reaches without pretrained weights, measured once per setting."""
    from imgclf.trainer.pretrain import scratch_baseline

    config = load_config()
    settings = config.trainer_config().model_dump(mode="json")
    path = os.path.join(config.output_dir, SCRATCH_BASELINE_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved["settings"] == settings:
            return saved, path
    result = {"settings": settings, **scratch_baseline(config.data, config.model, config.training)}
    os.makedirs(config.output_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result, path


def _predict(args: argparse.Namespace) -> int:
    """Exit 1 if some file is not an image; every other one is still scored and written."""
    from imgclf.pipeline.predict import image_files, predict, resolve_model_dir, write_csv

    model_dir = resolve_model_dir(args.model)
    files = image_files(args.images)
    if not files:
        raise FileNotFoundError(f"No image files in {', '.join(args.images)}.")
    predictions = predict(model_dir, files, args.top_k)
    csv_path = args.csv or (PREDICTIONS_CSV if any(map(os.path.isdir, args.images)) else None)
    if csv_path:
        write_csv(predictions.scored, csv_path)
        print(f"Wrote {len(predictions.scored)} predictions by {model_dir} to {csv_path}")
    else:
        for p in predictions.scored:
            ranked = ", ".join(f"{n} {prob:.3f}" for n, prob in zip(p.classes, p.probabilities))
            print(f"{p.path}: {ranked}")
    if predictions.unreadable:
        print(
            f"imgclf predict: {len(predictions.unreadable)} of {len(files)} files are not images "
            "this model can decode, and were not scored:",
            *(f"{path}: {why}" for path, why in predictions.unreadable.items()),
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


def _batch_predict(args: argparse.Namespace) -> int:
    """Exit 1 if some input could not be scored; its row says why."""
    from imgclf.pipeline.batch_predict import batch_predict
    from imgclf.pipeline.predict import resolve_model_dir

    config = load_config()
    model_dir = resolve_model_dir(args.model)
    result = batch_predict(
        model_dir,
        args.patterns,
        args.out,
        top_k=args.top_k,
        records=args.records,
        image_key=config.data.image_key,
        beam_pipeline_args=config.beam_arguments(),
    )
    print(f"Wrote {result.scored + result.errors} rows by {model_dir} to {result.output}")
    if result.errors:
        print(
            f"imgclf batch-predict: {result.errors} inputs could not be scored; "
            f"their rows in {result.output} say why.",
            file=sys.stderr,
        )
        return 1
    return 0
