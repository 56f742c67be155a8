"""The data commands: `imgclf sample-data`, `convert-folder` and `make-schema`."""

from __future__ import annotations

import argparse

from imgclf.cli.options import add_command, at_least_one
from imgclf.settings.config import load_config
from imgclf.settings.data import DataConfig


def add_commands(commands) -> None:
    sample = add_command(
        commands, "sample-data", _sample_data, "Write the sample shapes dataset.", False
    )
    sample.add_argument("--out", required=True)
    sample.add_argument(
        "--classes",
        type=lambda s: s.split(","),
        default=argparse.SUPPRESS,
        help="Comma-separated shape names.",
    )
    for option in ("train-per-class", "eval-per-class", "image-size", "num-shards", "seed"):
        sample.add_argument(f"--{option}", type=int, default=argparse.SUPPRESS)
    sample.add_argument("--image-format", choices=("png", "jpeg"), default=argparse.SUPPRESS)
    sample.add_argument("--overwrite", action="store_true")
    sample.add_argument(
        "--span",
        type=int,
        default=argparse.SUPPRESS,
        help="Write new images as <out>/span-N (new data arriving); seed defaults to N.",
    )

    convert = add_command(
        commands,
        "convert-folder",
        _convert_folder,
        "Convert <root>/<split>/<class>/*.jpg|png into sharded TFRecords.",
        False,
    )
    convert.add_argument("root")
    convert.add_argument("--out", required=True)
    convert.add_argument("--splits", nargs="+", default=["train", "eval"])
    convert.add_argument("--num-shards", type=int, default=1)
    convert.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="Leave out (and list) images that do not decode, instead of failing.",
    )
    convert.add_argument("--overwrite", action="store_true")
    convert.add_argument(
        "--max-image-pixels",
        type=at_least_one,
        default=DataConfig.model_fields["max_image_pixels"].default,
        help="Refuse (or with --skip-unreadable, leave out) images with more pixels, read from "
        "their headers (default: %(default)s, as data.max_image_pixels).",
    )
    convert.add_argument(
        "--span", type=int, help="Write <out>/span-N, keeping the labels of <out>'s earlier spans."
    )

    schema = add_command(
        commands,
        "make-schema",
        make_schema_command,
        "Write the curated schema of the configured data.",
    )
    schema.add_argument("--out", help="Default: the configured data.schema_file.")


def _sample_data(args: argparse.Namespace) -> None:
    from imgclf.imagedata.records import new_classes_note, span_dir
    from imgclf.imagedata.sample import write_sample_dataset, write_sample_span

    options = {k: v for k, v in vars(args).items() if k not in ("command", "handler", "out")}
    if "classes" in options:
        options["class_names"] = options.pop("classes")
    if "span" not in options:
        counts = write_sample_dataset(args.out, **options)
        print(f"Wrote {counts} to {args.out}")
        return
    counts, added = write_sample_span(args.out, **options)
    print(f"Wrote {counts} to {span_dir(args.out, args.span)}")
    if added:
        print(new_classes_note(added))


def _convert_folder(args: argparse.Namespace) -> None:
    from imgclf.imagedata.folders import convert_folder
    from imgclf.imagedata.records import span_dir

    report = convert_folder(
        args.root,
        args.out,
        splits=args.splits,
        num_shards=args.num_shards,
        skip_unreadable=args.skip_unreadable,
        overwrite=args.overwrite,
        span=args.span,
        max_image_pixels=args.max_image_pixels,
    )
    print(report.summary())
    print(f"Wrote {args.out if args.span is None else span_dir(args.out, args.span)}")


def make_schema_command(args: argparse.Namespace) -> None:
    from imgclf.imagedata.native_stderr import native_stderr_without
    from imgclf.imagedata.schema import STATISTICS_NOISE, make_schema, write_schema

    data = load_config().data
    out = getattr(args, "out", None) or data.schema_path
    with native_stderr_without(STATISTICS_NOISE):
        schema = make_schema(data)
    write_schema(schema, out)
    print(f"Wrote the curated schema of {data.root} to {out}; review it before use.")
