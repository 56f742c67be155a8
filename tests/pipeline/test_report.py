"""`imgclf timings`: where a run's time went, and what a cached rerun saved."""

from imgclf.pipeline.report import timing_lines
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
