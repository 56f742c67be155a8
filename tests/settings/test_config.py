import json
import os
from pathlib import Path

import pytest

from imgclf.settings.base import BUNDLED_CONFIGS, ConfigError
from imgclf.settings.config import TrainerConfig, load_config, to_env

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_products_and_paths_live_under_the_output_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_OUTPUT_DIR", str(tmp_path))
    config = load_config()
    assert config.model.base_model == "EfficientNetV2B0"
    assert config.model.weights == "imagenet"
    assert config.training.fine_tune_learning_rate == config.training.phase1_learning_rate
    assert config.pipeline_root == str(tmp_path / "pipelines" / "image-classifier")
    assert config.metadata_path == str(tmp_path / "metadata" / "image-classifier.db")
    assert config.serving_model_dir == str(tmp_path / "serving" / "image_classifier")
    assert config.tfx_home == str(tmp_path / "tfx")


def test_file_then_environment_then_overrides(tmp_path, monkeypatch):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "training:\n  phase1_epochs: 7\n  phase2_epochs: 3\nmodel:\n  image_size: 96\n"
    )
    environ = {
        "IMGCLF_CONFIG": str(settings),
        "IMGCLF_TRAINING__PHASE2_EPOCHS": "4",
        "IMGCLF_BEAM_PIPELINE_ARGS": "--direct_num_workers=3 --direct_running_mode=in_memory",
        "IMGCLF_BEAM__DIRECT_NUM_WORKERS": "2",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = load_config({"model.image_size": 128})
    assert config.training.phase1_epochs == 7
    assert config.training.phase2_epochs == 4
    assert config.model.image_size == 128
    assert config.beam_arguments() == [
        "--runner=DirectRunner",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        "--beam_plugins=imgclf",
        "--direct_num_workers=3",
        "--direct_running_mode=in_memory",
    ]


def test_relative_paths_become_absolute_and_remote_ones_stay(tmp_path):
    config = load_config({"data.root": "some/data", "model.weights": "gs://bucket/base.h5"})
    assert config.data.root == os.path.abspath("some/data")
    assert config.data.labels_path == os.path.join(os.path.abspath("some/data"), "labels.txt")
    assert config.model.weights == "gs://bucket/base.h5"


def test_errors_name_the_setting_and_where_it_came_from(monkeypatch):
    monkeypatch.setenv("IMGCLF_TRAINING__PHASE1_EPOCHS", "0")
    monkeypatch.setenv("IMGCLF_MODEL__BASE_MODEL", "VGG16")
    with pytest.raises(ConfigError) as raised:
        load_config()
    message = str(raised.value)
    assert "training.phase1_epochs" in message
    assert "$IMGCLF_TRAINING__PHASE1_EPOCHS" in message
    assert "unknown base model 'VGG16'" in message


def test_unknown_settings_are_refused_not_ignored(tmp_path, monkeypatch):
    with monkeypatch.context() as env:
        env.setenv("IMGCLF_TRAINING__EPOCHS", "3")
        with pytest.raises(ConfigError, match=r"unknown setting 'training\.epochs'"):
            load_config()
    settings = tmp_path / "settings.yaml"
    settings.write_text("trainig:\n  phase1_epochs: 2\n")
    monkeypatch.setenv("IMGCLF_CONFIG", str(settings))
    with pytest.raises(ConfigError, match=r"trainig.*from .*settings\.yaml"):
        load_config()


def test_a_misspelt_section_in_the_environment_is_named_not_a_traceback(monkeypatch):
    monkeypatch.setenv("IMGCLF_TRAINIG__PHASE1_EPOCHS", "3")
    with pytest.raises(ConfigError, match=r"\$IMGCLF_TRAINIG__PHASE1_EPOCHS: 'trainig' is not a"):
        load_config()


def test_a_missing_or_broken_settings_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        load_config()
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    monkeypatch.setenv("IMGCLF_CONFIG", str(broken))
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_config()


@pytest.mark.parametrize("content", ["- training\n- model\n", "flowers\n", "3\n"])
def test_a_settings_file_that_is_not_a_mapping_is_named_as_such(content, tmp_path, monkeypatch):
    settings = tmp_path / "settings.yaml"
    settings.write_text(content)
    monkeypatch.setenv("IMGCLF_CONFIG", str(settings))
    with pytest.raises(ConfigError, match=r"settings\.yaml.* holds a YAML (list|str|int); "):
        load_config()


def test_a_key_given_twice_in_a_settings_file_is_refused_naming_it_and_its_lines(
    tmp_path, monkeypatch
):
    settings = tmp_path / "settings.yaml"
    settings.write_text(
        "training:\n  phase1_epochs: 2\n  fine_tune_epochs: 1\n  phase1_epochs: 9\n"
    )
    monkeypatch.setenv("IMGCLF_CONFIG", str(settings))
    with pytest.raises(
        ConfigError,
        match=r"settings\.yaml.*'phase1_epochs' is given twice .*"
        r"\(lines 2 and 4\)",
    ):
        load_config()
    settings.write_text("pipeline_name: a\ntraining: {}\npipeline_name: b\n")
    with pytest.raises(ConfigError, match=r"'pipeline_name' is given twice"):
        load_config()


def test_lists_are_shell_words_in_the_environment_and_empty_unsets(monkeypatch):
    monkeypatch.setenv("IMGCLF_KUBEFLOW__BEAM_PIPELINE_ARGS", "--runner=DataflowRunner --region=x")
    monkeypatch.setenv("IMGCLF_TRAINING__STEPS_PER_EPOCH", "")
    config = load_config()
    assert config.kubeflow.beam_pipeline_args == ["--runner=DataflowRunner", "--region=x"]
    assert config.training.steps_per_epoch is None


def test_model_settings_are_checked_against_the_architecture():
    with pytest.raises(ConfigError, match="InceptionV3 needs image_size >= 75"):
        load_config({"model.base_model": "InceptionV3", "model.image_size": 64})
    with pytest.raises(ConfigError, match="alpha"):
        load_config({"model.base_model": "ResNet50V2", "model.alpha": 0.5})


def test_set_flags_map_to_environment_names(monkeypatch):
    assert to_env("training.phase1_epochs", "3") == ("IMGCLF_TRAINING__PHASE1_EPOCHS", "3")
    monkeypatch.setenv(*to_env("pipeline_name", "flowers"))
    assert load_config().pipeline_name == "flowers"


def test_the_trainer_config_survives_tfx_custom_config_json():
    config = load_config({"training.phase2_learning_rate": 5e-5})
    custom_config = json.loads(json.dumps(config.trainer_config().model_dump(mode="json")))
    assert TrainerConfig.model_validate(custom_config) == config.trainer_config()


def test_fine_tuning_depth_by_count_or_fraction():
    assert load_config().training.layers_to_unfreeze(200) == 200
    assert load_config({"training.fine_tune_layers": 20}).training.layers_to_unfreeze(200) == 20
    by_fraction = load_config({"training.fine_tune_fraction": 0.25})
    assert by_fraction.training.layers_to_unfreeze(200) == 50
    with pytest.raises(ConfigError, match="fine_tune_fraction"):
        load_config({"training.fine_tune_fraction": 1.5})


def test_span_settings_need_span_patterns():
    spans = {"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
    config = load_config({**spans, "data.span": 3, "data.rolling_spans": 2})
    assert config.data.has_spans and config.data.span == 3
    with pytest.raises(ConfigError, match=r"must all hold \{SPAN\} or none"):
        load_config({"data.train_pattern": "span-{SPAN}/train/*"})
    with pytest.raises(ConfigError, match=r"span and rolling_spans need \{SPAN\}"):
        load_config({"data.rolling_spans": 2})
    with pytest.raises(ConfigError, match="warm_start continues from the blessed model"):
        load_config({"training.warm_start": True})


@pytest.mark.parametrize("name", ["demo.yaml", "spans.yaml"])
def test_the_bundled_configurations_load(name, monkeypatch):
    monkeypatch.setenv("IMGCLF_CONFIG", str(REPO / "configs" / name))
    config = load_config()
    assert config.model.weights.endswith("mobilenet_v2_0.35_64_shapes.h5")
    assert config.data.has_spans == (name == "spans.yaml")


def test_fine_tuning_can_unfreeze_the_whole_base_and_no_fewer_than_one_layer():
    assert load_config({"training.fine_tune_layers": "all"}).training.layers_to_unfreeze(154) == 154
    assert load_config({"training.fine_tune_layers": "30"}).training.layers_to_unfreeze(154) == 30
    with pytest.raises(ConfigError, match=r"training\.fine_tune_layers"):
        load_config({"training.fine_tune_layers": 0})
    with pytest.raises(ConfigError, match=r"training\.fine_tune_layers"):
        load_config({"training.fine_tune_layers": "most"})


def test_a_validation_split_of_its_own_follows_the_span_patterns():
    spans = {"data.train_pattern": "span-{SPAN}/train/*", "data.eval_pattern": "span-{SPAN}/eval/*"}
    with_spans = {**spans, "data.validation_pattern": "span-{SPAN}/validation/*"}
    assert load_config(with_spans).data.validation_pattern == "span-{SPAN}/validation/*"
    with pytest.raises(ConfigError, match="validation_pattern must all hold"):
        load_config({**spans, "data.validation_pattern": "validation/*"})


def test_a_search_s_values_override_their_settings_and_are_validated_again():
    config = load_config().trainer_config()
    tuned = config.tuned({"phase2_learning_rate": 3e-4, "fine_tune_fraction": 0.5, "dropout": 0.4})
    assert tuned.training.phase2_learning_rate == 3e-4
    assert tuned.training.fine_tune_fraction == 0.5 and tuned.model.dropout == 0.4
    assert config.tuned({}) == config
    with pytest.raises(ValueError, match="dropout"):
        config.tuned({"dropout": 1.5})
    with pytest.raises(ConfigError, match=r"tuning\.fine_tune_fractions: .* at most 1"):
        load_config({"tuning.fine_tune_fractions": [0.5, 2]})


def test_a_bundled_base_is_found_inside_the_package_and_an_unknown_one_is_named():
    weights = load_config({"model.weights": "bundled:mobilenet_v2_0.35_64_shapes.h5"}).model.weights
    assert Path(weights) == BUNDLED_CONFIGS / "backbones" / "mobilenet_v2_0.35_64_shapes.h5"
    for wrong in ("bundled:resnet.h5", "bundled:../demo.yaml"):
        with pytest.raises(ConfigError, match=r"model\.weights.*bundled: mobilenet_v2_0\.35_64"):
            load_config({"model.weights": wrong})


@pytest.mark.parametrize(
    ("tasks", "error"),
    [
        (
            {"Evaluater": {"memory_gb": 8}},
            r"kubeflow.tasks: .*'Evaluater' is not a task of the pipeline",
        ),
        ({"Trainer": {"cpu": 8}}, r"Trainer: its pod asks for kubeflow.trainer's resources"),
        (
            {"Evaluator": {"memory_gb": 0}},
            r"kubeflow.tasks.Evaluator.memory_gb: Input should be greater",
        ),
    ],
)
def test_task_resources_name_a_task_of_the_pipeline(tasks, error):
    with pytest.raises(ConfigError, match=error):
        load_config({"kubeflow.tasks": tasks})
