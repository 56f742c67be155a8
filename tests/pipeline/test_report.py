"""`imgclf timings`: where a run's time went, and what a cached rerun saved."""

import pytest

from imgclf.pipeline.report import RunOutcome, timing_lines
from imgclf.pipeline.runs import NodeRun, PipelineRun


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
    assert f"  Test accuracy 0.900 {said}" in outcome.describe(min_accuracy=0.5)
