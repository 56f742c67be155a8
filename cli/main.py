"""`imgclf`: the project's command line.

    imgclf sample-data --out data/sample         write the sample shapes dataset
    imgclf convert-folder PHOTOS --out data/mine  class folders -> TFRecords
    imgclf make-schema                            the curated schema of the data
    imgclf validate                               validate the data only (no training)
    imgclf pretrain-backbone                      pretrain the offline demo's base
    imgclf scratch-baseline                       the same network from random weights
    imgclf run                                    your data -> pushed model, via the TFX CLI
    imgclf demo                                   sample data -> pushed model, via the TFX CLI
    imgclf retrain                                one scheduled run on the newest span (cron)
    imgclf report                                 the latest run's accuracy and push
    imgclf predict MODEL IMAGE|FOLDER ...         top-k classes with a pushed model
    imgclf batch-predict MODEL GLOB ... --out F   the same at scale, with Beam's RunInference
    imgclf timings                                each component's wall time in the latest run
    imgclf kubeflow compile|run|schedule|...      the pipeline on Kubeflow Pipelines

Settings: `--config FILE` (YAML) and `--set section.name=value`, which become
IMGCLF_* environment variables, so the TFX CLI's child processes see them too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imgclf  # first: chooses Keras 2 before TensorFlow loads

# isort: split
from imgclf.cli import kubeflow as kubeflow_cli
from imgclf.cli.options import add_settings_options, apply_settings
from imgclf.cli.startup import import_tensorflow_quietly
from imgclf.pipeline.lock import EXIT_BUSY
from imgclf.settings import names
from imgclf.settings.base import DEMO_CONFIG, ConfigError
from imgclf.settings.config import CONFIG_FILE_ENV, PipelineConfig, load_config
from imgclf.settings.data import DataConfig

SCRATCH_BASELINE_FILE = "scratch_baseline.json"
# The runner file the TFX CLI loads, inside the package (a wheel holds it too).
LOCAL_RUNNER = Path(imgclf.__file__).with_name("local_runner.py")
# The TFX CLI of the interpreter running imgclf: its own `tfx` script may not be on PATH.
TFX_CLI = [sys.executable, "-m", "tfx.tools.cli.cli_main"]
# `imgclf validate` records its runs apart from the full pipeline's.
VALIDATION_SUFFIX = "-validation"
PREDICTIONS_CSV = "predictions.csv"
# What `imgclf run` shows of the TFX CLI's output, as it is (the rest goes to its log file):
# Keras' epoch lines, the Trainer's own epoch lines, and errors logged by Python. What each
# component did is read from ML Metadata (pipeline/progress.py).
SHOWN_AS_IS = (
    re.compile(r"Epoch \d+/\d+$"),
    re.compile(r"\d+/\d+ - .*loss: "),
    re.compile(r"\[trainer\] "),
    re.compile(r"ERROR:"),
)
TAIL_LINES_ON_FAILURE = 60


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "loads_tensorflow", True):
        import_tensorflow_quietly()
    try:
        apply_settings(args)
        return args.handler(args) or 0
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"imgclf {args.command}: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgclf", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help: str, settings: bool = True):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if settings:
            add_settings_options(sub)
        return sub

    sample = command("sample-data", _sample_data, "Write the sample shapes dataset.", False)
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

    convert = command(
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
        type=_at_least_one,
        default=DataConfig.model_fields["max_image_pixels"].default,
        help="Refuse (or with --skip-unreadable, leave out) images with more pixels, read from "
        "their headers (default: %(default)s, as data.max_image_pixels).",
    )
    convert.add_argument(
        "--span", type=int, help="Write <out>/span-N, keeping the labels of <out>'s earlier spans."
    )

    schema = command(
        "make-schema", _make_schema, "Write the curated schema of the configured data."
    )
    schema.add_argument("--out", help="Default: the configured data.schema_file.")
    command(
        "validate",
        _validate,
        "Run the pipeline's ingestion and validation only; exit 1 if the data is rejected.",
    )
    command(
        "pretrain-backbone",
        _pretrain_backbone,
        "Pretrain the configured base on sample shapes; save it at model.weights.",
    )
    command(
        "scratch-baseline",
        _scratch_baseline,
        "Train the configured network from random weights at the pipeline's budget.",
    )
    run = command(
        "run",
        _run,
        "Run the pipeline on the configured data through the TFX CLI (Beam), registering it "
        "in the project's TFX home; writes the curated schema first if it is missing.",
    )
    demo = command(
        "demo",
        _demo,
        "Run the pipeline on the sample data through the TFX CLI, with the demo's settings "
        "(bundled with imgclf) unless --config names others.",
    )
    for sub in (run, demo):
        sub.add_argument(
            "--verbose", action="store_true", help="Show the TFX CLI's whole log, not progress."
        )
    retrain = command(
        "retrain",
        _retrain,
        "One scheduled run on the newest span (for cron): prints one summary line; exit 0 "
        f"whether or not a model was promoted, 1 on failure, {EXIT_BUSY} if a run is in progress.",
    )
    retrain.add_argument(
        "--wait", action="store_true", help="Wait for a run in progress instead of exiting."
    )
    command("report", _report, "Describe the latest pipeline run.")
    predict = command(
        "predict", _predict, "Top-k classes of image files with a pushed model.", False
    )
    predict.add_argument("model", help="A pushed version, or the serving folder (latest version).")
    predict.add_argument("images", nargs="+", help="Image files, or folders of images.")
    predict.add_argument("--top-k", type=_at_least_one, default=3)
    predict.add_argument(
        "--csv", help=f"Write a CSV here (default when a folder is given: {PREDICTIONS_CSV})."
    )
    batch = command(
        "batch-predict",
        _batch_predict,
        "Score image files (or TFRecords, --records) with a pushed model through Beam's "
        "RunInference on the configured beam_pipeline_args' runner; one CSV row per input, "
        "an error row for any that cannot be scored.",
    )
    batch.add_argument("model", help="A pushed version, or the serving folder (latest version).")
    batch.add_argument("patterns", nargs="+", help="Globs of image files, or of TFRecord files.")
    batch.add_argument("--out", required=True, help="The CSV to write.")
    batch.add_argument("--records", action="store_true", help="The globs match TFRecord files.")
    batch.add_argument("--top-k", type=_at_least_one, default=3)
    timings = command(
        "timings", _timings, "Each component's wall time in the latest run, from MLMD."
    )
    timings.add_argument(
        "--runs", type=int, default=1, help="Also list the totals of this many recent runs."
    )
    kubeflow_cli.add_commands(commands)
    return parser


def _at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


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


def _make_schema(args: argparse.Namespace) -> None:
    from imgclf.imagedata.native_stderr import native_stderr_without
    from imgclf.imagedata.schema import STATISTICS_NOISE, make_schema, write_schema

    data = load_config().data
    out = getattr(args, "out", None) or data.schema_path
    with native_stderr_without(STATISTICS_NOISE):
        schema = make_schema(data)
    write_schema(schema, out)
    print(f"Wrote the curated schema of {data.root} to {out}; review it before use.")


def _validate(args: argparse.Namespace) -> int:
    """The pipeline up to its data gate, in this process, as a pipeline of its own name."""
    from imgclf.components.data_gate import RESULT_TEXT, DataValidationError
    from imgclf.components.image_validator import REPORT_TEXT
    from imgclf.pipeline.local_run import running_here
    from imgclf.pipeline.runs import latest_run

    name = load_config().pipeline_name + VALIDATION_SUFFIX
    config = load_config({"pipeline_name": name})
    try:
        with (
            running_here(config, validate_only=True) as run,
            _unlogged(DataValidationError),
        ):
            run.start()
    except DataValidationError as error:
        print(_without_beam_context(error), file=sys.stderr)
        return 1
    run = latest_run(config.metadata_path, name)
    for node, output, filename in (
        (names.DATA_GATE, "result", RESULT_TEXT),
        (names.IMAGE_VALIDATOR, "report", REPORT_TEXT),
    ):
        with open(os.path.join(run.nodes[node].output(output).uri, filename)) as f:
            print(f.read(), end="")
    return 0


def _without_beam_context(error: Exception) -> str:
    """The component's own message: Beam appends " [while running 'Run[Node]']" to it."""
    return str(error).split(" [while running")[0]


@contextmanager
def _unlogged(expected: type[BaseException] | tuple[type[BaseException], ...]) -> Iterator[None]:
    """Beam logs a component's error, traceback and all, before the runner raises it: for a
    failure the command reports itself (rejected data), that is the same report twice more."""
    beam = logging.getLogger("apache_beam.runners.common")

    def unexpected(record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], expected))

    beam.addFilter(unexpected)
    try:
        yield
    finally:
        beam.removeFilter(unexpected)


def _pretrain_backbone(args: argparse.Namespace) -> None:
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


def _demo(args: argparse.Namespace) -> int:
    from imgclf.imagedata.sample import write_sample_dataset

    os.environ.setdefault(CONFIG_FILE_ENV, str(DEMO_CONFIG))
    config = load_config()
    if not os.path.exists(config.data.root):
        print(f"Writing the sample dataset to {config.data.root}")
        write_sample_dataset(config.data.root)
    weights = config.model.weights
    if weights not in ("imagenet", "none") and not os.path.exists(weights):
        print(f"Pretraining the demo's base network into {weights} (once)")
        _pretrain_backbone(args)
    # The report's "What transfer is worth" line: the demo's settings set training.compare_scratch.
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The pipeline on the configured data through the TFX CLI, then the report.

    What the TFX CLI would only find out inside a component is checked first:
    the data's files, the curated schema (written if missing), the base weights.
    """
    from imgclf.imagedata.spans import newest_span
    from imgclf.pipeline.local_run import check_serving_history
    from imgclf.pipeline.lock import holder
    from imgclf.trainer.model import check_base_weights

    config = load_config()
    if busy := holder(config):
        print(
            f"imgclf {args.command}: another run of {config.pipeline_name} is in progress "
            f"({busy}); this one did nothing. Run it again when that one has ended.",
            file=sys.stderr,
        )
        return EXIT_BUSY
    check_serving_history(config)
    newest_span(config.data)
    if not os.path.exists(config.data.schema_path):
        print(
            f"No curated schema at {config.data.schema_path}: writing one from the data "
            "(review it; `imgclf make-schema` writes it again)."
        )
        _make_schema(args)
    check_base_weights(config.model)
    # Unbuffered: Keras prints its epoch lines to a pipe here, which would hold them back.
    env = dict(os.environ, BEAM_HOME=config.tfx_home, PYTHONUNBUFFERED="1")
    # Registered in the project's TFX home: created once, updated on every later run.
    registered = os.path.isdir(os.path.join(config.tfx_home, config.pipeline_name))
    steps = [
        [
            "pipeline",
            "update" if registered else "create",
            "--engine",
            "beam",
            "--pipeline_path",
            str(LOCAL_RUNNER),
        ],
        ["run", "create", "--engine", "beam", "--pipeline_name", config.pipeline_name],
    ]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(config.output_dir, "logs", f"{config.pipeline_name}-{stamp}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    print(f"The full log: {log_path}" + ("" if args.verbose else " (--verbose shows it here)"))
    with open(log_path, "w") as log:
        for step in steps:
            command = [*TFX_CLI, *step]
            print(f"$ BEAM_HOME={config.tfx_home} {shlex.join(command)}", flush=True)
            watched = config if step[0] == "run" and not args.verbose else None
            status, stopped_by = _logged_call(command, env, log, args.verbose, watched)
            if stopped_by:
                name = signal.Signals(stopped_by).name
                print(
                    f"imgclf {args.command}: stopped by {name}; the pipeline run was stopped "
                    f"and its lock released (the full log: {log_path})",
                    file=sys.stderr,
                )
                if step[0] == "run":
                    _report(args)
                return 128 + stopped_by
            if status != 0:
                log.flush()
                print(
                    f"imgclf {args.command}: 'tfx {step[0]} {step[1]}' failed; the end of its log "
                    f"({log_path}):\n{_tail(log_path, TAIL_LINES_ON_FAILURE)}",
                    file=sys.stderr,
                )
                return 1
    return _report(args)


def _logged_call(
    command: list[str], env: dict, log, verbose: bool, watched: PipelineConfig | None
) -> tuple[int, int | None]:
    """Runs `command`; all it prints goes to `log`, and to the screen what a user follows.

    Shown: Keras' epoch lines and errors logged by Python, or everything with
    `verbose`; and, while it runs the `watched` pipeline, each component as it
    starts and ends, with its seconds and key figure, from ML Metadata. Returns
    the exit status and the signal that stopped this command, if one did
    (pipeline/local_run.py: `forwarding_stops`).
    """
    from imgclf.pipeline.local_run import forwarding_stops
    from imgclf.pipeline.progress import watching

    screen = threading.Lock()  # the progress thread and this one print whole lines

    def show(line: str) -> None:
        with screen:
            print(line, flush=True)

    progress = (
        watching(watched.metadata_path, watched.pipeline_name, show)
        if watched
        else contextlib.nullcontext()
    )
    with (
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ) as child,
        forwarding_stops(child) as received,
        progress,
    ):
        for line in child.stdout:
            log.write(line)
            if verbose or any(pattern.match(line) for pattern in SHOWN_AS_IS):
                show(line.rstrip("\n"))
        child.wait()
    return child.returncode, (received[0] if received else None)


def _tail(path: str, lines: int) -> str:
    with open(path) as f:
        return "".join(collections.deque(f, maxlen=lines))


def _retrain(args: argparse.Namespace) -> int:
    from imgclf.components.data_gate import DataValidationError
    from imgclf.imagedata.spans import newest_span
    from imgclf.modelstore.history import ServingHistoryLost
    from imgclf.modelstore.serving_folder import versions
    from imgclf.pipeline.local_run import RunStopped, running_here
    from imgclf.pipeline.lock import PipelineBusyError
    from imgclf.pipeline.retrain import scheduled, serving_words, summarize
    from imgclf.pipeline.runs import DamagedStoreError, latest_run
    from imgclf.trainer.model import check_base_weights

    config = scheduled(load_config())
    error = stop = None
    started = False  # the orchestrator was given the pipeline
    span = newest_span(config.data).number
    try:
        # A setting the pipeline refuses is the user's to mend: it is raised from here.
        with running_here(config, wait=args.wait) as run:
            for line in run.mended:
                print(f"imgclf retrain: {line}", file=sys.stderr)
            before = (
                latest_run(config.metadata_path, config.pipeline_name)
                if os.path.exists(config.metadata_path)
                else None
            )
            served_before = versions(config.serving_model_dir)
            check_base_weights(config.model)  # before the data is ingested and validated
            started = True
            try:
                with _unlogged((DataValidationError, RunStopped)):
                    run.start()
            except Exception as failure:  # the summary says what happened; this says why
                error = (_without_beam_context(failure) or type(failure).__name__).splitlines()[0]
                print(f"imgclf retrain: the run failed: {error}", file=sys.stderr)
    except PipelineBusyError as busy:
        print(f"imgclf retrain: {busy} Pass --wait to queue behind it.", file=sys.stderr)
        return EXIT_BUSY
    except DamagedStoreError as damaged:
        print(f"imgclf retrain: {damaged}", file=sys.stderr)
        serving = serving_words(versions(config.serving_model_dir))
        print(f"span {span}: FAILED: the ML Metadata store is damaged; nothing pushed; {serving}")
        return 1
    except ServingHistoryLost as lost:
        print(f"imgclf retrain: {lost}", file=sys.stderr)
        print(f"span {span}: FAILED: the serving folder lost its versions; nothing run")
        return 1
    except RunStopped as stopped:
        stop = stopped
    run = latest_run(config.metadata_path, config.pipeline_name) if started else None
    if run is None or (before is not None and run.run_id == before.run_id):
        what = stop.args[0] if stop else "the run failed"
        print(f"span {span}: {what} before any component ran; nothing pushed")
        return stop.exit_status if stop else 1
    summary = summarize(config, span, run, served_before, error, stop and stop.args[0])
    print(summary.line())
    if stop:
        return stop.exit_status
    return 1 if summary.failed else 0


def _report(args: argparse.Namespace) -> int:
    from imgclf.pipeline.report import latest_outcome

    config = load_config()
    outcome = latest_outcome(config)
    if outcome is None:
        print(f"No run of {config.pipeline_name} recorded in {config.metadata_path}.")
        return 1
    print(outcome.describe(config.evaluation.min_accuracy))
    return 0


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
        beam_pipeline_args=config.beam_pipeline_args,
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


def _timings(args: argparse.Namespace) -> int:
    from imgclf.pipeline.report import timing_lines
    from imgclf.pipeline.runs import list_runs

    config = load_config()
    runs = list_runs(config.metadata_path, config.pipeline_name)
    if not runs:
        print(f"No run of {config.pipeline_name} recorded in {config.metadata_path}.")
        return 1
    print("\n".join(timing_lines(runs[-args.runs :])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
