"""The beam sections: which Beam runner the data steps use, as a named preset.

The pipeline's Beam steps (ImportExampleGen, ImageValidator, StatisticsGen, the
Evaluator) and `imgclf batch-predict` run on the runner `runner` names:

    direct     Beam's DirectRunner in the step's own process (here, or the task's pod)
    dataflow   Google Cloud Dataflow, Runner v2, workers running the project's image
    portable   a Flink or Spark cluster's Beam job service (a PortableRunner's job
               endpoint), workers running the project's image: DOCKER, or EXTERNAL
               (a worker pool of that image beside each task manager)

`arguments()` turns a preset into Beam arguments; the free-form
`beam_pipeline_args` beside the section come after them, so they override a
preset's (Beam keeps the last value of a flag) or add to it.

Two things every preset's arguments carry, because workers on another machine are
fresh Python processes:

- `--beam_plugins=imgclf`: Beam's SDK harness (sdk_worker_main) imports the
  plugins before it runs any bundle, and importing `imgclf` chooses Keras 2
  (imgclf/__init__.py); TFMA's code in a worker would otherwise import TensorFlow
  first and get Keras 3, which cannot load the Trainer's SavedModel.
- `--sdk_container_image`: the image the workers run, which has the project
  installed. It is also one of the flags by which TFX sees that the workers have
  its code: without one, TFX builds a 52 MB `tfx_ephemeral` package per Beam step
  for them (tfx/utils/dependency_utils.py, make_beam_dependency_flags).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from imgclf.settings.base import Section

DIRECT, DATAFLOW, PORTABLE = "direct", "dataflow", "portable"
# Imported first by every SDK worker (see the module's docstring).
WORKER_PLUGIN = "imgclf"


class BeamConfig(Section):
    """A Beam runner preset; the fields of the other presets are ignored."""

    runner: Literal["direct", "dataflow", "portable"] = Field(
        DIRECT, description="direct | dataflow | portable (see docs/beam.md)."
    )
    direct_num_workers: int = Field(
        1,
        ge=0,
        description="direct: 1 runs in the step's own process; more (0: one per core) in "
        "worker processes.",
    )
    image: str = Field(
        "",
        description="dataflow, portable: the image the workers run (the project's, built "
        "from kubeflow/Dockerfile); on Kubeflow, default kubeflow.image.",
    )
    project: str = Field("", description="dataflow: the Google Cloud project.")
    region: str = Field("", description="dataflow: the region, e.g. europe-west4.")
    temp_location: str = Field("", description="dataflow: a gs:// folder for Dataflow's files.")
    max_num_workers: int | None = Field(None, ge=1, description="dataflow: autoscaling's cap.")
    machine_type: str = Field("", description="dataflow: the workers' machine type.")
    service_account: str = Field("", description="dataflow: the workers' service account.")
    job_endpoint: str = Field(
        "", description="portable: the Beam job service's host:port (Flink's or Spark's)."
    )
    environment: Literal["DOCKER", "EXTERNAL"] = Field(
        "DOCKER",
        description="portable: DOCKER, each worker a container of `image`; EXTERNAL, workers "
        "started by a worker pool of `image` at worker_pool.",
    )
    worker_pool: str = Field("", description="portable, EXTERNAL: the worker pool's host:port.")
    parallelism: int | None = Field(
        None, ge=1, description="portable: the job's parallelism (Flink's and Spark's option)."
    )

    @model_validator(mode="after")
    def _preset_complete(self) -> BeamConfig:
        if self.runner == DATAFLOW:
            missing = [name for name in ("project", "region") if not getattr(self, name)]
            if missing:
                raise ValueError(f"the dataflow preset needs {' and '.join(missing)}")
            if not self.temp_location.startswith("gs://"):
                raise ValueError(
                    f"temp_location {self.temp_location!r}: the dataflow preset needs a gs:// "
                    "folder, where Dataflow stages and writes its temporary files"
                )
        if self.runner == PORTABLE:
            if not self.job_endpoint:
                raise ValueError("the portable preset needs job_endpoint (host:port)")
            if self.environment == "EXTERNAL" and not self.worker_pool:
                raise ValueError("the portable preset's EXTERNAL environment needs worker_pool")
        return self

    def missing_image(self) -> bool:
        """A remote runner's workers need the project's image: its name is the caller's
        to check, as the kubeflow section takes kubeflow.image by default."""
        return self.runner != DIRECT and not self.image

    def arguments(self) -> list[str]:
        """The preset's Beam arguments; none for the direct runner in the step's process."""
        if self.runner == DIRECT:
            if self.direct_num_workers == 1 and not self.image:
                return []
            arguments = ["--runner=DirectRunner", f"--direct_num_workers={self.direct_num_workers}"]
            if self.direct_num_workers != 1:
                arguments.append("--direct_running_mode=multi_processing")
        elif self.runner == DATAFLOW:
            arguments = [
                "--runner=DataflowRunner",
                f"--project={self.project}",
                f"--region={self.region}",
                f"--temp_location={self.temp_location}",
                "--experiments=use_runner_v2",
                # The SDK the image has installed, not one staged from here.
                "--sdk_location=container",
            ]
            arguments += _optional(
                max_num_workers=self.max_num_workers,
                machine_type=self.machine_type,
                service_account_email=self.service_account,
            )
        else:
            arguments = [
                "--runner=PortableRunner",
                f"--job_endpoint={self.job_endpoint}",
                f"--environment_type={self.environment}",
                "--environment_config="
                + (self.image if self.environment == "DOCKER" else self.worker_pool),
            ]
            arguments += _optional(parallelism=self.parallelism)
        if self.image:
            arguments.append(f"--sdk_container_image={self.image}")
        return [*arguments, f"--beam_plugins={WORKER_PLUGIN}"]


def _optional(**flags: object) -> list[str]:
    return [f"--{name}={value}" for name, value in flags.items() if value]
