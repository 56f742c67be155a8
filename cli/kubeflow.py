"""`imgclf kubeflow ...`: compile, submit, schedule, list and disable on Kubeflow Pipelines.

    imgclf kubeflow compile                  write the PipelineSpec YAML
    imgclf kubeflow run --param phase1_epochs=10 --param span=3
    imgclf kubeflow schedule --cron "0 0 3 * * *"     (Vertex AI: "0 3 * * *")
    imgclf kubeflow schedules                this pipeline's recurring runs
    imgclf kubeflow disable RECURRING_RUN_ID

The cluster's settings are the configuration's `kubeflow` section. With
kubeflow.backend `kfp` (open-source Kubeflow Pipelines 2) the kfp client
talks to kubeflow.host; --host, --namespace and --experiment override the
settings, and the token comes from --token or $KFP_TOKEN, never from a
configuration file. With `vertex`, google-cloud-aiplatform submits to
kubeflow.project and kubeflow.region with Google's default credentials.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

from imgclf.cli.options import add_settings_options
from imgclf.kubeflow.cluster import for_kubeflow
from imgclf.settings.cluster import VERTEX
from imgclf.settings.names import PARAMETER_TYPES

KFP_TOKEN_ENV = "KFP_TOKEN"
COMPILED_DIR = "kubeflow"


def add_commands(commands) -> None:
    kubeflow = commands.add_parser(
        "kubeflow", help="Compile, submit and schedule on Kubeflow Pipelines.", description=__doc__
    )
    actions = kubeflow.add_subparsers(dest="action", required=True)

    def action(name: str, handler, help: str, connects: bool = True):
        sub = actions.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        add_settings_options(sub)
        if connects:
            sub.add_argument("--host", help="KFP API endpoint (default: kubeflow.host).")
            sub.add_argument("--namespace", help="Default: kubeflow.namespace.")
            sub.add_argument("--token", help=f"Bearer token (default: ${KFP_TOKEN_ENV}).")
        return sub

    compile_ = action("compile", _compile, "Write the pipeline's PipelineSpec YAML.", False)
    compile_.add_argument("--out", help=f"Default: <output_dir>/{COMPILED_DIR}/<name>.yaml.")
    for name, handler, help in (
        ("run", _run, "Compile, upload (a new version if it exists) and start a run."),
        ("schedule", _schedule, "Compile, upload and create a recurring run."),
    ):
        sub = action(name, handler, help)
        sub.add_argument("--experiment", help="Default: kubeflow.experiment or the pipeline name.")
        sub.add_argument("--name", help="The run's name (default: pipeline name and time).")
        sub.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"A pipeline parameter: {', '.join(PARAMETER_TYPES)}.",
        )
    schedule = actions.choices["schedule"]
    schedule.add_argument(
        "--cron",
        required=True,
        help="Open-source KFP: robfig/cron, seconds first ('0 0 3 * * *' is 03:00 daily; "
        "'@daily', '@every 6h'). Vertex AI: 5 fields ('0 3 * * *').",
    )
    schedule.add_argument("--max-concurrency", type=int, default=1)
    schedule.add_argument(
        "--catchup", action="store_true", help="Make up runs missed while paused or behind."
    )
    # Only the client: no TensorFlow to load.
    action("schedules", _schedules, "List this pipeline's recurring runs.").set_defaults(
        loads_tensorflow=False
    )
    disable = action("disable", _disable, "Disable a recurring run.")
    disable.set_defaults(loads_tensorflow=False)
    disable.add_argument("recurring_run_id")


def parse_parameters(assignments: list[str]) -> dict[str, Any]:
    """--param NAME=VALUE flags as the pipeline's typed parameters."""
    from imgclf.settings.config import parse_assignment

    values = {}
    for assignment in assignments:
        name, text = parse_assignment(assignment)
        if name not in PARAMETER_TYPES:
            raise ValueError(
                f"--param {name}: not a pipeline parameter; known: {sorted(PARAMETER_TYPES)}"
            )
        try:
            values[name] = PARAMETER_TYPES[name](text)
        except ValueError:
            raise ValueError(
                f"--param {name}={text!r}: expected {PARAMETER_TYPES[name].__name__}"
            ) from None
    return values


def _compiled(args, schedule: bool = False) -> tuple[Any, str]:
    """Compiles the configured pipeline; a schedule's warm-starts by default (pipeline/retrain)."""
    from imgclf.kubeflow.runner import compile_pipeline
    from imgclf.pipeline.retrain import scheduled
    from imgclf.settings.config import load_config

    config = scheduled(load_config()) if schedule else load_config()
    path = getattr(args, "out", None) or os.path.join(
        config.output_dir, COMPILED_DIR, f"{config.pipeline_name}.yaml"
    )
    compile_pipeline(config, path)
    print(f"Compiled {path} (image {config.kubeflow.image})")
    return config, path


def _compile(args) -> None:
    _compiled(args)


def _connect(args, config):
    if config.kubeflow.backend == VERTEX:
        from imgclf.kubeflow.vertex import VertexClient

        cluster = config.kubeflow
        return VertexClient(
            cluster.project, cluster.region, cluster.service_account, cluster.api_endpoint
        )
    from imgclf.kubeflow.client import KubeflowClient

    return KubeflowClient(
        host=args.host or config.kubeflow.host,
        namespace=args.namespace or config.kubeflow.namespace,
        token=args.token or os.environ.get(KFP_TOKEN_ENV),
    )


def _submit(args, submit, schedule: bool = False) -> int:
    from imgclf.kubeflow.client import KubeflowError

    parameters = parse_parameters(args.param)
    config, path = _compiled(args, schedule)
    try:
        client = _connect(args, config)
        where = ""
        if config.kubeflow.backend == VERTEX:
            submitted = submit(client, config, path, parameters)
        else:
            pipeline = client.upload(path, config.pipeline_name)
            print(f"Pipeline {config.pipeline_name}: id {pipeline[0]}, version {pipeline[1]}")
            experiment = args.experiment or config.kubeflow.experiment or config.pipeline_name
            submitted = submit(client, config, (experiment, pipeline), parameters)
            where = f" in experiment {experiment!r}"
    except KubeflowError as error:
        return _failed(args, error)
    print(f"Created {submitted.kind} {submitted.id}{where}")
    print(submitted.link)
    return 0


def _run(args) -> int:
    def submit(client, config, target, parameters):
        name = args.name or _timestamped(config.pipeline_name)
        pipeline_root = for_kubeflow(config).pipeline_root
        if config.kubeflow.backend == VERTEX:
            return client.run(name, target, pipeline_root, parameters)
        experiment, pipeline = target
        return client.run(experiment, pipeline, name, pipeline_root, parameters)

    return _submit(args, submit)


def _schedule(args) -> int:
    def submit(client, config, target, parameters):
        name = args.name or f"{config.pipeline_name}-schedule"
        pipeline_root = for_kubeflow(config).pipeline_root
        if config.kubeflow.backend == VERTEX:
            # Each backend checks its own cron; a refusal comes back explained.
            return client.schedule(
                name, target, args.cron, pipeline_root, parameters, args.max_concurrency
            )
        experiment, pipeline = target
        return client.schedule(
            experiment,
            pipeline,
            name=name,
            cron=args.cron,
            pipeline_root=pipeline_root,
            parameters=parameters,
            max_concurrency=args.max_concurrency,
            catchup=args.catchup,
        )

    return _submit(args, submit, schedule=True)


def _schedules(args) -> int:
    from imgclf.kubeflow.client import KubeflowError
    from imgclf.settings.config import load_config

    config = load_config()
    try:
        client = _connect(args, config)
        if config.kubeflow.backend == VERTEX:
            rows = [
                (job.resource_name, job.state.name, job.cron, job.display_name)
                for job in client.schedules(f"{config.pipeline_name}-schedule")
            ]
        else:
            rows = [
                (job.recurring_run_id, job.mode, _cron_of(job), job.display_name)
                for job in client.recurring_runs(config.pipeline_name)
            ]
    except KubeflowError as error:
        return _failed(args, error)
    if not rows:
        print(f"No recurring runs of {config.pipeline_name}.")
    for job_id, state, cron, name in rows:
        print(f"{job_id}  {state}  {cron!r}  {name}")
    return 0


def _cron_of(job) -> str:
    return job.trigger.cron_schedule.cron if job.trigger and job.trigger.cron_schedule else ""


def _disable(args) -> int:
    from imgclf.kubeflow.client import KubeflowError
    from imgclf.settings.config import load_config

    try:
        _connect(args, load_config()).disable(args.recurring_run_id)
    except KubeflowError as error:
        return _failed(args, error)
    print(f"Disabled recurring run {args.recurring_run_id}")
    return 0


def _failed(args, error: Exception) -> int:
    print(f"imgclf kubeflow {args.action}: {error}", file=sys.stderr)
    return 1


def _timestamped(name: str) -> str:
    return f"{name}-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}"
