"""`imgclf retrain`: one scheduled run of the pipeline on the newest span, for cron.

It runs the whole pipeline in this process with warm start on (unless the
configuration says otherwise) and prints one line: the span, whether the new
model was blessed and against what, and which version serving has now. A
run with no new span reuses every cached artifact: it trains nothing and
says "no new data".

Only one run of a pipeline at a time may write its metadata store: a second
invocation waits for the first (`--wait`) or exits at once, saying so
(pipeline/lock.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from imgclf.modelstore.serving_folder import versions
from imgclf.pipeline.report import RunOutcome, outcome_of
from imgclf.pipeline.runs import UNFINISHED, PipelineRun
from imgclf.settings import names
from imgclf.settings.config import PipelineConfig


def scheduled(config: PipelineConfig) -> PipelineConfig:
    """The configuration of a scheduled run: warm start on by default when data has spans."""
    if config.training.warm_start is not None or not config.data.has_spans:
        return config
    return config.model_copy(
        update={"training": config.training.model_copy(update={"warm_start": True})}
    )


@dataclass(frozen=True)
class Summary:
    """What one run did, in one line: its words come from what happened, not from guesses.

    What was pushed is what appeared in the serving folder during the run
    (`served_before`, `served_after`); whether anything was trained is the
    Trainer's state in ML Metadata; a component that failed fails the run.
    """

    span: int
    run: PipelineRun
    outcome: RunOutcome
    served_before: list[int]
    served_after: list[int]
    error: str | None = None  # why the orchestrator stopped the run, when it raised
    stopped: str | None = None  # "stopped by SIGTERM", when a signal stopped it

    @property
    def pushed(self) -> list[int]:
        return sorted(set(self.served_after) - set(self.served_before))

    @property
    def broken(self) -> list[str]:
        """Components that did not finish, apart from a data gate that rejected the data."""
        return [
            node.node_id
            for node in self.run.nodes.values()
            if node.state in UNFINISHED
            and not (node.node_id == names.DATA_GATE and self.outcome.data_rejected)
        ]

    @property
    def failed(self) -> bool:
        return bool(
            self.outcome.data_rejected
            or self.broken
            or self.error
            or self.stopped
            or self.outcome.blessed is None
        )

    @property
    def trained(self) -> bool:
        trainer = self.run.nodes.get(names.TRAINER)
        return trainer is not None and trainer.state == "COMPLETE"

    def line(self) -> str:
        head = f"span {self.span}: "
        tail = f"{self._push()}; {self._serving()}"
        if self.stopped:
            where = f" in {', '.join(self.broken)}" if self.broken else ""
            return f"{head}{self.stopped}{where}; {tail}"
        if self.outcome.data_rejected:
            why = rejection_reason(self.outcome.data_rejected)
            return f"{head}data rejected ({why}); nothing trained; {tail}"
        if self.broken or self.error:
            where = f" in {', '.join(self.broken)}" if self.broken else ""
            why = f": {self.error}" if self.error else ""
            return f"{head}FAILED{where}{why}; {tail}"
        if self.outcome.blessed is None:
            return f"{head}the run stopped before evaluation; {tail}"
        if not self.trained:
            verdict = f"; {self._verdict()}" if self.pushed else ""
            return f"{head}no new data: nothing trained{verdict}; {tail}"
        return f"{head}{self._verdict()}; {self._start()}; {tail}"

    def _verdict(self) -> str:
        outcome = self.outcome
        versus = (
            f" vs {outcome.baseline_accuracy:.3f}"
            if outcome.baseline_accuracy is not None
            else ", no blessed model of these classes before"
        )
        accuracy = f"accuracy {outcome.accuracy:.3f}{versus}"
        if outcome.blessed:
            return f"blessed ({accuracy})"
        return f"not blessed ({accuracy}: {'; '.join(outcome.failures)})"

    def _start(self) -> str:
        start = (self.outcome.training or {}).get("start")
        return start["reason"].rstrip(".") if start else "start unknown"

    def _push(self) -> str:
        if self.pushed:
            return f"pushed version {', '.join(map(str, self.pushed))}"
        check = self.outcome.serving_check
        if self.outcome.blessed and check and not check["passed"]:
            return f"nothing pushed: the serving check failed ({check['reason'].splitlines()[0]})"
        if self.outcome.already_served is not None:
            return f"nothing pushed: version {self.outcome.already_served} already is this model"
        if self.outcome.not_pushed_because:
            return f"nothing pushed: {self.outcome.not_pushed_because}"
        return "nothing pushed"

    def _serving(self) -> str:
        return serving_words(self.served_after)


def rejection_reason(report: str) -> str:
    """The first reason the gate gives (a schema anomaly, or the image validation's first
    failure), not only its verdict."""
    lines = report.splitlines()
    failures = [
        line.strip().removeprefix("FAIL: ") for line in lines if line.startswith("  FAIL: ")
    ]
    if lines[0].startswith("Image validation") and failures:
        return f"{lines[0]}: {failures[0]}"
    return lines[0]


def serving_words(served: list[int]) -> str:
    """The end of every summary line: what serving has now."""
    return f"serving version {served[-1]}" if served else "nothing served"


def summarize(
    config: PipelineConfig,
    span: int,
    run: PipelineRun,
    served_before: list[int],
    error: str | None = None,
    stopped: str | None = None,
) -> Summary:
    return Summary(
        span=span,
        run=run,
        outcome=outcome_of(run, config.data.label_key),
        served_before=served_before,
        served_after=versions(config.serving_model_dir),
        error=error,
        stopped=stopped,
    )
