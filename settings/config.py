"""The one configuration of the pipeline, validated when it is built.

Values come, lowest priority first, from the defaults of each section (a module
of its own: data, model, training, checks, cluster), a YAML file named
by `IMGCLF_CONFIG`, environment variables and explicit overrides; pydantic-settings
reads and merges the sources:

    IMGCLF_PIPELINE_NAME=flowers                  a top-level setting
    IMGCLF_TRAINING__PHASE1_EPOCHS=3              a setting of a section
    IMGCLF_BEAM__RUNNER=portable                  the Beam runner preset (settings/beam.py)

Environment variables reach every process the TFX CLI starts, which is why
they are the way to override settings without editing code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from imgclf.settings.base import (
    ArgumentList,
    ConfigError,
    Section,
    absolute_path,
    empty_means_none,
)
from imgclf.settings.beam import BeamConfig
from imgclf.settings.checks import EvaluationConfig, ServingConfig, ValidationConfig
from imgclf.settings.cluster import KubeflowConfig
from imgclf.settings.data import DataConfig
from imgclf.settings.model import ModelConfig
from imgclf.settings.names import (
    PUSH_RECORDS_DIR,
    SPAN_SPEC,
)
from imgclf.settings.training import TUNED_SETTINGS, TrainingConfig, TuningConfig

ENV_PREFIX = "IMGCLF_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "IMGCLF_CONFIG"
# The IMGCLF_* variables the command line's `--set` wrote (comma-separated), so that a
# message about one of them names the flag the user typed, not a variable they never set.
SET_ON_COMMAND_LINE_ENV = "IMGCLF_SET_ON_COMMAND_LINE"


class TrainerConfig(Section):
    """The part of the configuration the Trainer module receives as custom_config."""

    data: DataConfig
    model: ModelConfig
    training: TrainingConfig
    serving: ServingConfig
    tuning: TuningConfig = Field(default_factory=TuningConfig)

    def tuned(self, values: Mapping[str, Any]) -> TrainerConfig:
        """This configuration with a search's values in place (trainer/tuning.py), validated."""
        settings = self.model_dump(mode="json")
        for section, names in TUNED_SETTINGS.items():
            settings[section].update({name: values[name] for name in names if name in values})
        return TrainerConfig.model_validate(settings)


class PipelineConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    pipeline_name: str = Field("image-classifier", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model_name: str = Field("image_classifier", pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: str = Field("outputs", description="Default home of every path below.")
    pipeline_root: str = Field("", description="Default: <output_dir>/pipelines/<name>.")
    metadata_path: str = Field("", description="Default: <output_dir>/metadata/<name>.db.")
    serving_root: str = Field("", description="Default: <output_dir>/serving.")
    tfx_home: str = Field("", description="The TFX CLI's BEAM_HOME. Default: <output_dir>/tfx.")
    beam: BeamConfig = Field(default_factory=BeamConfig)
    beam_pipeline_args: ArgumentList = Field(
        default_factory=list,
        description="Free-form Beam arguments after the beam preset's, overriding them. "
        "Arguments without a dependency flag (--extra_packages, --setup_file, "
        "--sdk_container_image) make TFX build a 52 MB copy of itself per Beam component, "
        "for remote workers (tfx/utils/dependency_utils.py); a local run removes them at its end.",
    )
    enable_cache: bool = True
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    kubeflow: KubeflowConfig = Field(default_factory=KubeflowConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: overrides, the environment, the file $IMGCLF_CONFIG names."""
        config_file = os.environ.get(CONFIG_FILE_ENV)
        sources = [init_settings, env_settings]
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _unset_empty(cls, values: Any) -> Any:
        return empty_means_none(cls, values)

    @model_validator(mode="after")
    def _derive_paths(self) -> PipelineConfig:
        self.output_dir = absolute_path(self.output_dir)
        derived = {
            "pipeline_root": os.path.join(self.output_dir, "pipelines", self.pipeline_name),
            "metadata_path": os.path.join(self.output_dir, "metadata", f"{self.pipeline_name}.db"),
            "serving_root": os.path.join(self.output_dir, "serving"),
            "tfx_home": os.path.join(self.output_dir, "tfx"),
        }
        for name, default in derived.items():
            setattr(self, name, absolute_path(getattr(self, name) or default))
        return self

    @model_validator(mode="after")
    def _beam_image(self) -> PipelineConfig:
        if self.beam.missing_image():
            raise ValueError(
                f"beam.image: the {self.beam.runner} preset's workers run the project's image "
                "(built from kubeflow/Dockerfile); name it"
            )
        return self

    @model_validator(mode="after")
    def _warm_start_needs_spans(self) -> PipelineConfig:
        if self.training.warm_start and not self.data.has_spans:
            raise ValueError(
                "training.warm_start continues from the blessed model of an earlier span: "
                f"give data.train_pattern and data.eval_pattern a {SPAN_SPEC}"
            )
        return self

    @property
    def serving_model_dir(self) -> str:
        """Where versions are pushed: TF Serving's `--model_base_path`."""
        return os.path.join(self.serving_root, self.model_name)

    @property
    def push_records_dir(self) -> str:
        """Where each push is recorded, outside the serving folder (modelstore/)."""
        return os.path.join(self.pipeline_root, PUSH_RECORDS_DIR)

    def beam_arguments(self) -> list[str]:
        """What the Beam steps run with: the preset's arguments, then the free-form ones."""
        return self.beam.arguments() + self.beam_pipeline_args

    def trainer_config(self) -> TrainerConfig:
        return TrainerConfig(
            data=self.data,
            model=self.model,
            training=self.training,
            serving=self.serving,
            tuning=self.tuning,
        )


def load_config(overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """Builds the configuration from defaults, file, environment and `overrides`.

    `overrides` maps dotted names to values, e.g. {"training.phase1_epochs": 2}.
    """
    overrides = dict(overrides or {})
    _refuse_unknown_environment(os.environ)
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        _check_config_file(config_file)
    values: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *sections, name = dotted.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    try:
        return PipelineConfig(**values)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "configuration"
            source = _source_of(where, overrides, config_file)
            problems.append(f"  {where}: {item['msg']}" + (f" (from {source})" if source else ""))
        raise ConfigError("Invalid configuration:\n" + "\n".join(problems)) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark):
        super().__init__(
            f"{key!r} is given twice in one mapping (lines {first.line + 1} and "
            f"{again.line + 1}); YAML readers would keep the second silently"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, not the last wins."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _check_config_file(path: str) -> None:
    """What pydantic-settings' YAML source would misread: a missing file, a file that is not
    YAML or not a mapping of settings, a key given twice."""
    where = f"Configuration file {path!r} (${CONFIG_FILE_ENV})"
    try:
        with open(path) as f:
            content = yaml.load(f, Loader=_UniqueKeyLoader)
    except OSError as error:
        raise ConfigError(f"Cannot read {where}: {error.strerror}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid settings YAML: {error}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(
            f"{where} holds a YAML {type(content).__name__}; settings are a mapping of names to "
            "values, e.g. 'pipeline_name: flowers' and 'training:' with 'phase1_epochs: 3' "
            "indented under it."
        )


def parse_assignment(assignment: str) -> tuple[str, str]:
    """'training.phase1_epochs=3' -> ('training.phase1_epochs', '3'), for command-line flags."""
    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise ConfigError(f"Expected NAME=VALUE (training.phase1_epochs=3), got {assignment!r}.")
    return name.strip(), value


def to_env(dotted: str, value: str) -> tuple[str, str]:
    """('training.phase1_epochs', '3') -> ('IMGCLF_TRAINING__PHASE1_EPOCHS', '3')."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(p.upper() for p in dotted.split(".")), value


def _refuse_unknown_environment(environ: Mapping[str, str]) -> None:
    """An IMGCLF_* variable that names no setting is a typo: pydantic-settings would ignore it."""
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in (
            CONFIG_FILE_ENV,
            SET_ON_COMMAND_LINE_ENV,
        ):
            continue
        *sections, name = variable[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
        model: type[BaseModel] = PipelineConfig
        for section in sections:
            field = model.model_fields.get(section)
            annotation = field.annotation if field else None
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ConfigError(f"${variable}: {section!r} is not a configuration section.")
            model = annotation
        if name not in model.model_fields:
            dotted = ".".join([*sections, name])
            raise ConfigError(
                f"${variable}: unknown setting {dotted!r}; known: {sorted(model.model_fields)}."
            )


def _source_of(dotted: str, overrides: Mapping[str, Any], config_file: str | None) -> str:
    """Where a setting's value came from, highest priority first, for error messages."""
    if dotted in overrides:
        return f"override {dotted}"
    variable = to_env(dotted, "")[0]
    if variable in os.environ.get(SET_ON_COMMAND_LINE_ENV, "").split(","):
        return f"--set {dotted}"
    if variable in os.environ:
        return f"${variable}"
    return config_file or ""
