"""The run report: where a run's time went (`imgclf timings`), and what its figures can tell."""

import pytest

from imgclf.pipeline.report import RunOutcome, describe_training, timing_lines
from imgclf.pipeline.runs import NodeRun, PipelineRun
from imgclf.trainer.confidence import measured
from imgclf.trainer.export import SCRATCH, TRANSFER
from imgclf.trainer.schedule import ACCURACY, MONITOR


def run(run_id: str, state: str, trainer: float, others: float) -> PipelineRun:
    return PipelineRun(
        run_id,
        {
            "Trainer": NodeRun("Trainer", state, trainer),
            "Evaluator": NodeRun("Evaluator", state, others),
        },
    )


def test_the_trainers_share_and_a_cached_rerun_as_a_fraction_of_the_first():
    lines = timing_lines([run("first", "COMPLETE", 60.0, 20.0), run("again", "CACHED", 1.0, 1.0)])
    assert lines[0] == "Run again"
    assert lines[1].split() == ["Trainer", "1.0", "s", "CACHED"]
    assert not any("share" in line for line in lines)  # the Trainer did not run again
    assert "  the Trainer's share: 75.0%" in timing_lines([run("first", "COMPLETE", 60.0, 20.0)])
    assert lines[-2].split()[:5] == ["first", "80.0", "s", "100.0%", "of"]
    assert lines[-1].split()[:5] == ["again", "2.0", "s", "2.5%", "of"]
    assert lines[-1].endswith("0 executed, 2 cached")


def test_one_run_shows_no_comparison():
    lines = timing_lines([run("only", "COMPLETE", 30.0, 10.0)])
    assert "  the Trainer's share: 75.0%" in lines
    assert not any("oldest first" in line for line in lines)


@pytest.mark.parametrize(
    "in_train, said",
    [
        (0, "on 40 images of the eval split, which training never saw (must be >= 0.500)"),
        (3, "on 40 images of the eval split, 3 of which are also in the train split"),
        (None, "on 40 images of the eval split (not compared with the train split)"),
    ],
)
def test_the_run_report_says_truly_whether_training_saw_the_test_images(in_train, said):
    outcome = RunOutcome("run", accuracy=0.9, example_count=40, eval_images_in_train=in_train)
    interval = "(95% interval 0.769 to 0.960)"
    assert f"  Test accuracy 0.900 {interval} {said}" in outcome.describe(min_accuracy=0.5)


def _summary(accuracy: float, images: int) -> dict:
    accuracies = [accuracy - 0.05, accuracy]
    phase = {"name": "fine_tuning", "epochs": [0, 1], "learning_rate": 1e-4, "best_epoch": 1}
    return {
        "base_model": "MobileNetV2",
        "strategy": "MirroredStrategy",
        "num_replicas": 2,
        "global_batch_size": 32,
        "validation_examples": images,
        "phases": [{**phase, "history": {ACCURACY: accuracies, MONITOR: accuracies}}],
        "exported": TRANSFER,
        "validation": measured(accuracy, images),
        "scratch": {"validation_accuracy": accuracy - 0.1, "epochs": 2},
    }


def test_every_accuracy_carries_its_interval_and_few_validation_images_are_said_to_be_few():
    lines = describe_training(_summary(1.0, 18))
    assert (
        "    kept weights: validation accuracy 1.000 (95% interval 0.824 to 1.000) on 18 images"
        in lines
    )
    assert (
        "    18 validation images cannot tell apart accuracies from 0.82 to 1.00: the best epoch "
        "and early stopping follow them"
    ) in lines
    assert lines[-1].startswith(
        "  What transfer is worth: validation accuracy 1.000 (95% interval 0.824 to 1.000) from "
        "the pretrained weights, 0.900 (95% interval "
    )
    assert lines[-1].endswith("; the model from the pretrained weights is exported")
    assert not any("cannot tell" in line for line in describe_training(_summary(0.95, 400)))
    outcome = RunOutcome("run", accuracy=0.9, example_count=40, baseline_accuracy=0.85)
    assert (
        "  Last blessed model: accuracy 0.850 (95% interval 0.709 to 0.929) on the same images"
        in (outcome.describe(min_accuracy=0.5))
    )


def test_the_report_says_when_the_model_from_random_weights_did_better_and_is_exported():
    summary = _summary(0.8, 100)
    summary["scratch"] = {"validation_accuracy": 0.85, "epochs": 2}
    summary["exported"] = SCRATCH
    summary["validation"] = measured(0.85, 100)
    lines = describe_training(summary)
    assert any(line.startswith("    kept weights: validation accuracy 0.850 ") for line in lines)
    assert lines[-1].endswith(
        "from random weights at the same budget (2 epochs, 100 validation images); the model "
        "from random weights did better by 0.050, and is exported instead"
    )
