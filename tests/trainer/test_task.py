"""run_fn end to end: in-process under MirroredStrategy, and on 2 workers (a chief and a
worker, one preempted and both resumed; two that are not: tests/kubeflow/backend_sequence.py).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from imgclf.imagedata.records import read_records, to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, write_sample_dataset
from imgclf.settings.config import TrainerConfig, load_config
from imgclf.trainer.data import first_records
from imgclf.trainer.export import (
    IMAGES_INPUT,
    SCRATCH,
    SERVING_IMAGES,
    TRANSFER,
    read_summary,
)
from imgclf.trainer.model import build_base
from imgclf.trainer.roles import data_roles
from imgclf.trainer.schedule import FEATURE_EXTRACTION, FINE_TUNING, MONITOR, kept_epoch
from imgclf.trainer.task import VERTEX_TENSORBOARD_DIR, WORK_DIR, run_fn, tensorboard_dirs

pytestmark = pytest.mark.slow

RUN_TRAINER = Path(__file__).with_name("run_trainer.py")
PHASE1_EPOCHS, PHASE2_EPOCHS = 1, 2


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Sample shapes as ExampleGen leaves them: GZIP TFRecords per split, and labels."""
    root = tmp_path_factory.mktemp("trainer_data")
    write_sample_dataset(str(root / "raw"), train_per_class=8, eval_per_class=4, image_size=32)
    for split in ("train", "eval"):
        (root / split).mkdir()
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(str(root / split / "data.gz"), options) as writer:
            for record in read_records(str(root / "raw" / split / "*")):
                writer.write(to_example(record).SerializeToString())
    return root


def _fn_args(examples, tiny_backbone, out: Path, **training) -> dict:
    config = load_config(
        {
            "data.root": str(examples / "raw"),
            **{f"model.{k}": v for k, v in tiny_backbone.model_dump().items()},
            "training.batch_size": 4,
            "training.phase1_epochs": PHASE1_EPOCHS,
            "training.phase2_epochs": PHASE2_EPOCHS,
            **{f"training.{k}": v for k, v in training.items()},
        },
    )
    return {
        "train_files": [str(examples / "train" / "*")],
        "eval_files": [str(examples / "eval" / "*")],
        "serving_model_dir": str(out / "serving"),
        "model_run_dir": str(out / "model_run"),
        "custom_config": config.trainer_config().model_dump(mode="json"),
    }


def _start(fn_args: dict, out: Path, env: dict | None = None) -> subprocess.Popen:
    args_file = out / "fn_args.json"
    args_file.write_text(json.dumps(fn_args))
    return subprocess.Popen(
        [sys.executable, str(RUN_TRAINER), str(args_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _kill_at(process: subprocess.Popen, marker: str, deadline: float = 900) -> list[str]:
    """Reads the child's output until a line starts with `marker`, then kills it.

    A child that never prints the marker is killed at the deadline, and the test fails.
    """
    watchdog = threading.Timer(deadline, process.kill)
    watchdog.start()
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith(marker):
                process.kill()
                break
    finally:
        watchdog.cancel()
    assert seen and seen[-1].startswith(marker), (
        f"no {marker!r} within {deadline:.0f} s:\n" + "".join(seen[-30:])
    )
    return seen


def _epoch_lines(output: str) -> list[str]:
    """'[trainer] fine_tuning epoch 3 done' lines, without their throughput."""
    return [line.split(" (")[0] for line in output.splitlines() if line.startswith("[trainer]")]


@pytest.fixture(scope="module")
def mirrored(examples, tiny_backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored")
    fn_args = _fn_args(
        examples,
        tiny_backbone,
        out,
        cpu_replicas=2,
        validation_fraction=0.25,
        class_weight="balanced",
        compare_scratch=True,
    )
    # The pipeline hands the Trainer the train split as its eval files (its validation
    # is carved out of it); the eval split, the test, never reaches it.
    fn_args["eval_files"] = fn_args["train_files"]
    run_fn(tfx.components.FnArgs(**fn_args))
    return fn_args


def test_validation_is_carved_out_of_train_and_the_summary_says_so(mirrored):
    summary = read_summary(mirrored["serving_model_dir"])
    # 8 train images per class: 32, split by image hash.
    assert summary["train_examples"] + summary["validation_examples"] == 32
    assert 0 < summary["validation_examples"] < 16
    assert summary["roles"] == {
        "train": "the train split, 75% of it by image hash",
        "validation": "the train split, 25% of it by image hash",
        "test": "the eval split (the Evaluator's; never read by the Trainer)",
    }
    counts = summary["train_class_counts"]
    assert sum(counts) == summary["train_examples"] and len(counts) == len(DEFAULT_CLASSES)
    # Balanced: each class's weight times its count is the same for every class.
    weighted = [summary["class_weight"][str(label)] * count for label, count in enumerate(counts)]
    assert weighted == pytest.approx([summary["train_examples"] / len(counts)] * len(counts))


def test_the_same_network_from_random_weights_is_trained_at_the_same_budget(mirrored):
    summary = read_summary(mirrored["serving_model_dir"])
    scratch = summary["scratch"]
    assert scratch["epochs"] == len(summary["history"]["epoch"])  # as many as transfer trained
    assert 0.0 <= scratch["validation_accuracy"] <= 1.0


def _validation_accuracy(fn_args: dict) -> float:
    """The exported model's accuracy on the validation part of the train split, as served."""
    config = TrainerConfig.model_validate(fn_args["custom_config"])
    part = data_roles(tfx.components.FnArgs(**fn_args), config).validation_part
    records = [
        tf.train.Example.FromString(record)
        for record in first_records(fn_args["train_files"], 10_000, part)
    ]
    features = [record.features.feature for record in records]
    images = tf.constant([f[config.data.image_key].bytes_list.value[0] for f in features])
    labels = np.array([f[config.data.label_key].int64_list.value[0] for f in features])
    served = tf.saved_model.load(fn_args["serving_model_dir"]).signatures[SERVING_IMAGES]
    probabilities = served(**{IMAGES_INPUT: images})["probabilities"].numpy()
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def test_the_better_of_transfer_and_scratch_on_validation_is_the_model_exported(mirrored):
    summary = read_summary(mirrored["serving_model_dir"])
    transfer, scratch = kept_epoch(summary["phases"]), summary["scratch"]
    better = SCRATCH if scratch["score"] > transfer[MONITOR] else TRANSFER
    assert summary["exported"] == better
    assert summary["validation"]["accuracy"] == pytest.approx(_validation_accuracy(mirrored))


def test_when_the_pretrained_features_are_useless_the_model_from_scratch_is_exported(
    examples, tiny_backbone, tmp_path
):
    # An untrained network's features are all but zero under inference-mode BatchNormalization:
    # the transfer model can only learn the class prior.
    useless = tiny_backbone.model_copy(update={"weights": str(tmp_path / "untrained.h5")})
    build_base(useless.model_copy(update={"weights": "none"})).save_weights(useless.weights)
    fn_args = _fn_args(
        examples,
        useless,
        tmp_path,
        phase1_epochs=8,
        phase1_learning_rate=3e-3,
        phase2_epochs=0,
        validation_fraction=0.25,
        compare_scratch=True,
    )
    fn_args["eval_files"] = fn_args["train_files"]
    run_fn(tfx.components.FnArgs(**fn_args))
    summary = read_summary(fn_args["serving_model_dir"])
    assert summary["exported"] == SCRATCH
    transfer, scratch = kept_epoch(summary["phases"]), summary["scratch"]
    assert scratch["score"] > transfer[MONITOR]
    assert summary["validation"]["accuracy"] == scratch["validation_accuracy"]
    # The served model is the one from random weights: it scores what scratch scored.
    assert _validation_accuracy(fn_args) == pytest.approx(scratch["validation_accuracy"])


def test_mirrored_strategy_on_two_cpu_replicas_trains_both_phases_and_exports(mirrored, examples):
    summary = read_summary(mirrored["serving_model_dir"])
    assert (summary["strategy"], summary["num_replicas"]) == ("MirroredStrategy", 2)
    assert summary["global_batch_size"] == 8
    assert [phase["name"] for phase in summary["phases"]] == [FEATURE_EXTRACTION, FINE_TUNING]
    assert summary["history"]["epoch"] == list(range(PHASE1_EPOCHS + PHASE2_EPOCHS))
    records = list(read_records(str(examples / "raw" / "eval" / "*")))
    served = tf.saved_model.load(mirrored["serving_model_dir"]).signatures[SERVING_IMAGES]
    probabilities = served(**{IMAGES_INPUT: tf.constant([r.image for r in records])})
    np.testing.assert_allclose(probabilities["probabilities"].numpy().sum(axis=1), 1, rtol=1e-5)
    # The checkpoints that make a run resumable are gone once the model is exported.
    assert not os.path.exists(os.path.join(mirrored["model_run_dir"], WORK_DIR))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster_env(index: int, hosts: list[str]) -> dict:
    """TF_CONFIG of a chief (index 0) and one worker, as the Training Operator writes it."""
    cluster = {"chief": hosts[:1], "worker": hosts[1:]}
    task = {"type": "chief", "index": 0} if index == 0 else {"type": "worker", "index": 0}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


def test_a_preempted_worker_and_its_chief_resume_together_and_no_other_run_takes_their_state(
    examples, tiny_backbone, tmp_path
):
    fn_args = _fn_args(examples, tiny_backbone, tmp_path)
    first_phase2_epoch = PHASE1_EPOCHS

    def start_both() -> list[subprocess.Popen]:
        hosts = [f"localhost:{port}" for port in _free_ports(2)]
        started = []
        for index in range(2):
            folder = tmp_path / f"replica{index}"
            folder.mkdir(exist_ok=True)
            started.append(_start(fn_args, folder, _cluster_env(index, hosts)))
        return started

    chief, worker = start_both()
    _kill_at(worker, f"[trainer] {FINE_TUNING} epoch {first_phase2_epoch} done ")
    # Its peer gone, the chief's collectives fail; a backend stops it in any case.
    try:
        chief.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        chief.kill()
        chief.communicate(timeout=60)
    worker.wait(timeout=60)
    assert not os.path.exists(os.path.join(fn_args["serving_model_dir"], "saved_model.pb"))

    # Another run given their folders, as a reset metadata store makes TFX do, with other
    # settings: it starts over, and says why (stopped once its first epoch shows it).
    elsewhere = tmp_path / "other"
    shutil.copytree(fn_args["model_run_dir"], elsewhere / "model_run")
    other = _fn_args(examples, tiny_backbone, elsewhere, phase2_learning_rate=1e-4)
    other_run = _start(other, elsewhere)
    seen = _kill_at(other_run, "[trainer] ")
    other_run.wait(timeout=60)
    assert "belongs to another run" in "".join(seen)
    assert _epoch_lines(seen[-1]) == [f"[trainer] {FEATURE_EXTRACTION} epoch 0 done"]

    # Restarted with new addresses, as a backend's new pods would be: both resume at the
    # next epoch, and end as an uninterrupted run.
    restarted = start_both()
    outputs = [process.communicate(timeout=900)[0] for process in restarted]
    for process, output in zip(restarted, outputs):
        assert process.returncode == 0, output[-3000:]
        assert _epoch_lines(output) == [
            f"[trainer] {FINE_TUNING} epoch {epoch} done"
            for epoch in range(first_phase2_epoch + 1, PHASE1_EPOCHS + PHASE2_EPOCHS)
        ]
    summary = read_summary(fn_args["serving_model_dir"])
    assert summary["workers"] == 2
    assert summary["history"]["epoch"] == list(range(PHASE1_EPOCHS + PHASE2_EPOCHS))
    assert [p["epochs"] for p in summary["phases"]] == [
        list(range(PHASE1_EPOCHS)),
        list(range(PHASE1_EPOCHS, PHASE1_EPOCHS + PHASE2_EPOCHS)),
    ]
    assert not os.path.exists(os.path.join(fn_args["model_run_dir"], WORK_DIR))


def test_the_trainer_also_logs_where_vertex_ai_tensorboard_reads(monkeypatch):
    monkeypatch.delenv(VERTEX_TENSORBOARD_DIR, raising=False)
    assert tensorboard_dirs("gs://b/run/model_run") == ["gs://b/run/model_run"]
    monkeypatch.setenv(VERTEX_TENSORBOARD_DIR, "gs://b/run/model_run/vertex/logs/")
    assert tensorboard_dirs("gs://b/run/model_run") == [
        "gs://b/run/model_run",
        "gs://b/run/model_run/vertex/logs/",
    ]
