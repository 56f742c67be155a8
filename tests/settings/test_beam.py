"""The Beam runner presets: their arguments, how a free-form argument overrides them, what
is refused when the configuration is built, and TFX seeing the workers' dependencies."""

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, WorkerOptions
from apache_beam.testing.util import assert_that, equal_to
from tfx.utils import dependency_utils

from imgclf.settings.base import ConfigError
from imgclf.settings.beam import BeamConfig
from imgclf.settings.config import load_config

IMAGE = "registry.example.com/image-classifier:1"
DATAFLOW = {
    "beam.runner": "dataflow",
    "beam.project": "my-project",
    "beam.region": "europe-west4",
    "beam.temp_location": "gs://my-bucket/tmp",
    "beam.image": IMAGE,
}


def test_a_local_run_uses_the_direct_runner_in_its_own_process_by_default():
    assert load_config().beam_arguments() == []


def test_on_kubeflow_the_direct_preset_runs_worker_processes_of_the_task_s_image():
    config = load_config({"kubeflow.image": IMAGE})
    assert config.kubeflow.beam.arguments() == [
        "--runner=DirectRunner",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        f"--sdk_container_image={IMAGE}",
        "--beam_plugins=imgclf",
    ]


def test_the_dataflow_preset_runs_runner_v2_on_the_project_s_image():
    config = load_config(
        {**DATAFLOW, "beam.max_num_workers": 50, "beam.machine_type": "n2-highmem-4"}
    )
    assert config.beam_arguments() == [
        "--runner=DataflowRunner",
        "--project=my-project",
        "--region=europe-west4",
        "--temp_location=gs://my-bucket/tmp",
        "--experiments=use_runner_v2",
        "--sdk_location=container",
        "--max_num_workers=50",
        "--machine_type=n2-highmem-4",
        f"--sdk_container_image={IMAGE}",
        "--beam_plugins=imgclf",
    ]


@pytest.mark.parametrize(
    ("environment", "config"),
    [("DOCKER", IMAGE), ("EXTERNAL", "localhost:50000")],
)
def test_the_portable_preset_sends_the_job_to_the_job_service(environment, config):
    preset = BeamConfig(
        runner="portable",
        job_endpoint="flink-jobserver:8099",
        environment=environment,
        worker_pool="localhost:50000",
        parallelism=8,
        image=IMAGE,
    )
    assert preset.arguments() == [
        "--runner=PortableRunner",
        "--job_endpoint=flink-jobserver:8099",
        f"--environment_type={environment}",
        f"--environment_config={config}",
        "--parallelism=8",
        f"--sdk_container_image={IMAGE}",
        "--beam_plugins=imgclf",
    ]


def test_free_form_arguments_come_after_the_preset_s_and_override_them():
    config = load_config(
        {**DATAFLOW, "beam_pipeline_args": ["--region=us-central1", "--num_workers=3"]}
    )
    options = PipelineOptions(config.beam_arguments())
    assert options.get_all_options()["region"] == "us-central1"
    assert options.view_as(WorkerOptions).num_workers == 3


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"beam.runner": "dataflow", "beam.project": "p"}, "beam: .*needs region"),
        (
            {**DATAFLOW, "beam.temp_location": "/tmp/dataflow"},
            "beam: .*temp_location '/tmp/dataflow': the dataflow preset needs a gs:// folder",
        ),
        ({"beam.runner": "portable", "beam.image": IMAGE}, "beam: .*needs job_endpoint"),
        (
            {"beam.runner": "portable", "beam.job_endpoint": "h:1", "beam.environment": "EXTERNAL"},
            "EXTERNAL environment needs worker_pool",
        ),
        ({**DATAFLOW, "beam.image": ""}, "beam.image: the dataflow preset's workers run"),
        ({"kubeflow.beam.runner": "dataflow"}, "kubeflow.beam: .*needs project and region"),
        ({"beam.runner": "flink"}, "beam.runner: Input should be 'direct', 'dataflow' or"),
    ],
)
def test_an_incomplete_preset_is_refused_naming_the_setting(settings, error):
    with pytest.raises(ConfigError, match=error):
        load_config(settings)


def test_on_kubeflow_the_workers_run_the_pipeline_s_image_unless_told_otherwise():
    settings = {f"kubeflow.{name}": value for name, value in DATAFLOW.items()}
    del settings["kubeflow.beam.image"]
    assert load_config({**settings, "kubeflow.image": IMAGE}).kubeflow.beam.image == IMAGE
    other = load_config({**settings, "kubeflow.image": IMAGE, "kubeflow.beam.image": "other:2"})
    assert other.kubeflow.beam.image == "other:2"


@pytest.mark.parametrize(
    "preset",
    [
        BeamConfig(image=IMAGE),
        BeamConfig(direct_num_workers=2, image=IMAGE),
        BeamConfig(**{name.removeprefix("beam."): value for name, value in DATAFLOW.items()}),
        BeamConfig(runner="portable", job_endpoint="h:1", image=IMAGE),
    ],
)
def test_tfx_sees_the_workers_have_its_code_and_builds_no_package(preset):
    """tfx/utils/dependency_utils.py builds a 52 MB sdist per Beam step without such a flag."""
    arguments = preset.arguments()
    assert dependency_utils.make_beam_dependency_flags(arguments) == arguments


def test_the_kubeflow_direct_preset_runs_beam_in_worker_processes_without_docker():
    """--sdk_container_image only tells TFX the workers have its code: the DirectRunner
    starts its workers as processes of this Python (a builtin: they import no test module)."""
    arguments = load_config({"kubeflow.image": IMAGE}).kubeflow.beam.arguments()
    assert PipelineOptions(arguments).view_as(DirectOptions).direct_running_mode == (
        "multi_processing"
    )
    with beam.Pipeline(options=PipelineOptions(arguments)) as pipeline:
        squares = pipeline | beam.Create(range(5)) | beam.Map(pow, 2)
        assert_that(squares, equal_to([0, 1, 4, 9, 16]))


def test_a_cluster_section_given_in_part_keeps_the_cluster_s_other_defaults():
    config = load_config({"kubeflow.beam": {"image": IMAGE}, "kubeflow.beam_steps": {"cpu": 4}})
    assert config.kubeflow.beam.direct_num_workers == 2
    assert (config.kubeflow.beam_steps.cpu, config.kubeflow.beam_steps.memory_gb) == (4, 8)
