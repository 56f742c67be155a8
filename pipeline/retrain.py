"""`imgclf retrain`: one scheduled run of the pipeline on the newest span, for cron.

It runs the whole pipeline in this process with warm start on (unless the
configuration says otherwise) and prints one line: the span, whether the new
model was blessed and against what, and which version serving has now. A
run with no new span reuses every cached artifact: it trains nothing and
says "no new data".

Only one run of a pipeline at a time may write its metadata store: a second
invocation waits for the first (`--wait`) or exits at once, saying so.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imgclf.components.pusher import versions
from imgclf.pipeline.report import RunOutcome, outcome_of
from imgclf.pipeline.runs import PipelineRun
from imgclf.settings import names
from imgclf.settings.config import PipelineConfig

# Exit statuses: 0 success (promoted or not), 1 failure, this when another run holds the lock.
EXIT_BUSY = 75  # EX_TEMPFAIL: cron's next run will try again


class RetrainBusyError(RuntimeError):
    """Another retrain of the same pipeline holds the lock."""


def lock_path(config: PipelineConfig) -> str:
    return config.metadata_path + ".lock"


@contextmanager
def exclusive(config: PipelineConfig, wait: bool) -> Iterator[None]:
    """Holds the pipeline's lock (an flock, released if the process dies) for one run."""
    path = lock_path(config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RetrainBusyError(
                f"Another run of {config.pipeline_name} is in progress ({holder} holds "
                f"{path}); this one did nothing. Pass --wait to queue behind it."
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def scheduled(config: PipelineConfig) -> PipelineConfig:
    """The configuration of a scheduled run: warm start on by default when data has spans."""
    if config.training.warm_start is not None or not config.data.has_spans:
        return config
    return config.model_copy(
        update={"training": config.training.model_copy(update={"warm_start": True})}
    )


@dataclass(frozen=True)
class Summary:
    span: int
    run: PipelineRun
    outcome: RunOutcome
    serving_version: int | None

    @property
    def no_new_data(self) -> bool:
        trainer = self.run.nodes.get(names.TRAINER)
        return trainer is not None and trainer.state == "CACHED"

    @property
    def failed(self) -> bool:
        return self.outcome.data_rejected is not None or self.outcome.blessed is None

    def line(self) -> str:
        serving = (
            f"serving version {self.serving_version}"
            if self.serving_version
            else "nothing served yet"
        )
        head = f"span {self.span}: "
        if self.outcome.data_rejected:
            first = self.outcome.data_rejected.splitlines()[0]
            return f"{head}data rejected ({first}); nothing trained or pushed; {serving}"
        if self.outcome.blessed is None:
            return f"{head}the run stopped before evaluation; nothing pushed; {serving}"
        if self.no_new_data:
            return f"{head}no new data: nothing trained, nothing pushed; {serving}"
        return f"{head}{self._verdict()}; {self._start()}; {self._push(serving)}"

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

    def _push(self, serving: str) -> str:
        if self.outcome.pushed_to:
            return f"pushed version {os.path.basename(self.outcome.pushed_to)}"
        if self.outcome.already_served is not None:
            return f"not pushed: version {self.outcome.already_served} already is this model"
        return f"not pushed; {serving}"


def summarize(config: PipelineConfig, span: int, run: PipelineRun) -> Summary:
    present = versions(config.serving_model_dir)
    return Summary(
        span=span,
        run=run,
        outcome=outcome_of(run, config.data.label_key),
        serving_version=present[-1] if present else None,
    )
