"""Running the pipeline here: `imgclf validate`, `run`, `demo`, `retrain`, `report`, `timings`.

`run` and `demo` go through the TFX CLI, as a user of TFX would, and show the run's
progress from ML Metadata (pipeline/progress.py); `validate` and `retrain` run it
in this process. All of them run it as pipeline/local_run.py does.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
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

import imgclf
from imgclf.cli.data import make_schema_command
from imgclf.cli.models import pretrain_backbone_command
from imgclf.cli.options import add_command
from imgclf.pipeline.lock import EXIT_BUSY
from imgclf.settings import names
from imgclf.settings.base import DEMO_CONFIG
from imgclf.settings.config import CONFIG_FILE_ENV, PipelineConfig, load_config

# The runner file the TFX CLI loads, inside the package (a wheel holds it too).
LOCAL_RUNNER = Path(imgclf.__file__).with_name("local_runner.py")
# The TFX CLI of the interpreter running imgclf: its own `tfx` script may not be on PATH.
TFX_CLI = [sys.executable, "-m", "tfx.tools.cli.cli_main"]
# `imgclf validate` records its runs apart from the full pipeline's.
VALIDATION_SUFFIX = "-validation"
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


def add_commands(commands) -> None:
    add_command(
        commands,
        "validate",
        _validate,
        "Run the pipeline's ingestion and validation only; exit 1 if the data is rejected.",
    )
    run = add_command(
        commands,
        "run",
        _run,
        "Run the pipeline on the configured data through the TFX CLI (Beam), registering it "
        "in the project's TFX home; writes the curated schema first if it is missing.",
    )
    demo = add_command(
        commands,
        "demo",
        _demo,
        "Run the pipeline on the sample data through the TFX CLI, with the demo's settings "
        "(bundled with imgclf) unless --config names others.",
    )
    for sub in (run, demo):
        sub.add_argument(
            "--verbose", action="store_true", help="Show the TFX CLI's whole log, not progress."
        )
    retrain = add_command(
        commands,
        "retrain",
        _retrain,
        "One scheduled run on the newest span (for cron): prints one summary line; exit 0 "
        f"whether or not a model was promoted, 1 on failure, {EXIT_BUSY} if a run is in progress.",
    )
    retrain.add_argument(
        "--wait", action="store_true", help="Wait for a run in progress instead of exiting."
    )
    add_command(commands, "report", _report, "Describe the latest pipeline run.")
    timings = add_command(
        commands, "timings", _timings, "Each component's wall time in the latest run, from MLMD."
    )
    timings.add_argument(
        "--runs", type=int, default=1, help="Also list the totals of this many recent runs."
    )


def _validate(args: argparse.Namespace) -> int:
    """The pipeline up to its data gate, in this process, as a pipeline of its own name."""
    from imgclf.components.data_gate import RESULT_TEXT, DataValidationError
    from imgclf.components.image_validator import REPORT_TEXT
    from imgclf.pipeline.local_run import running_here
    from imgclf.pipeline.report import page_of
    from imgclf.pipeline.runs import latest_run

    name = load_config().pipeline_name + VALIDATION_SUFFIX
    config = load_config({"pipeline_name": name})
    rejected = None
    try:
        with (
            running_here(config, validate_only=True) as run,
            _unlogged(DataValidationError),
        ):
            run.start()
    except DataValidationError as error:
        rejected = error
    run = latest_run(config.metadata_path, name)
    page = f"Data report (a web page): {page_of(run, names.DATA_REPORT)}"
    if rejected:
        print(_without_beam_context(rejected), file=sys.stderr)
        print(page, file=sys.stderr)
        return 1
    for node, output, filename in (
        (names.DATA_GATE, "result", RESULT_TEXT),
        (names.IMAGE_VALIDATOR, "report", REPORT_TEXT),
    ):
        with open(os.path.join(run.nodes[node].output(output).uri, filename)) as f:
            print(f.read(), end="")
    print(page)
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
        pretrain_backbone_command(args)
    # The report's "What transfer is worth" line: the demo's settings set training.compare_scratch.
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The pipeline on the configured data through the TFX CLI, then the report."""
    config = load_config()
    if busy := _checked_before_the_tfx_cli(args, config):
        return busy
    # Unbuffered: Keras prints its epoch lines to a pipe here, which would hold them back.
    env = dict(os.environ, BEAM_HOME=config.tfx_home, PYTHONUNBUFFERED="1")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(config.output_dir, "logs", f"{config.pipeline_name}-{stamp}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    print(f"The full log: {log_path}" + ("" if args.verbose else " (--verbose shows it here)"))
    with open(log_path, "w") as log:
        for step in _tfx_cli_steps(config):
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


def _checked_before_the_tfx_cli(args: argparse.Namespace, config: PipelineConfig) -> int:
    """What the TFX CLI would only find out inside a component, checked first: no run in
    progress, the served history, the data's files, the curated schema (written if missing),
    the base weights. Returns EXIT_BUSY if another run holds the lock, else 0."""
    from imgclf.imagedata.spans import newest_span
    from imgclf.pipeline.local_run import check_serving_history
    from imgclf.pipeline.lock import holder
    from imgclf.trainer.model import check_base_weights

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
        make_schema_command(args)
    check_base_weights(config.model)
    return 0


def _tfx_cli_steps(config: PipelineConfig) -> list[list[str]]:
    """Register the pipeline in the project's TFX home (created once, then updated), run it."""
    registered = os.path.isdir(os.path.join(config.tfx_home, config.pipeline_name))
    register = "update" if registered else "create"
    return [
        ["pipeline", register, "--engine", "beam", "--pipeline_path", str(LOCAL_RUNNER)],
        ["run", "create", "--engine", "beam", "--pipeline_name", config.pipeline_name],
    ]


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
