"""Recording an evaluation: its stages (outcome, timing, detail) and its end.

Stage rows are buffered and written with the next database write of the evaluation, so the
no-op path costs one transaction at its end instead of one per stage; a long evaluation
flushes after each expensive stage so a dashboard sees it progress.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlmodel import Session

from specfleet.core.db import StageResult
from specfleet.core.log import get_logger
from specfleet.core.metrics import observe_stage

log = get_logger("specfleet.pipeline")

MAX_DETAIL_TEXT = 2000  # per string in a stage's detail: rows stay small


@dataclass
class Stage:
    """One stage while it runs; the stage sets ``outcome`` and adds to ``detail``."""

    name: str
    started_at: dt.datetime
    outcome: str = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0


class StageLog:
    """The stages of one delivery of an evaluation, in order."""

    def __init__(self, evaluation_id: int, attempt: int, clock: Callable[[], dt.datetime]) -> None:
        self.evaluation_id = evaluation_id
        self.attempt = attempt
        self.clock = clock
        self.stages: list[Stage] = []
        self._pending: list[Stage] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        current = Stage(name, self.clock())
        start = time.perf_counter()
        try:
            # every line logged inside names the stage; the stage's own lines say when it
            # started and how it ended (the fault suite reads a killed evaluation from them)
            with structlog.contextvars.bound_contextvars(stage=name):
                log.info("stage started")
                yield current
        except BaseException as error:
            current.outcome = "error"
            current.detail["error"] = f"{type(error).__name__}: {error}"
            raise
        finally:
            current.duration_ms = round((time.perf_counter() - start) * 1000)
            log.info(
                "stage finished",
                stage=name,
                outcome=current.outcome,
                duration_ms=current.duration_ms,
            )
            self.stages.append(current)
            self._pending.append(current)

    def write_pending(self, session: Session) -> None:
        for stage in self._pending:
            detail = {key: _bounded(value) for key, value in stage.detail.items()}
            observe_stage(stage.name, stage.duration_ms / 1000, stage.outcome)
            if self.attempt > 1:
                detail["attempt"] = self.attempt
            session.add(
                StageResult(
                    evaluation_id=self.evaluation_id,
                    stage=stage.name,
                    outcome=stage.outcome[:32],
                    started_at=stage.started_at,
                    duration_ms=stage.duration_ms,
                    detail=detail,
                )
            )
        self._pending = []


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
        return value[: MAX_DETAIL_TEXT - 1] + "…"
    if isinstance(value, list):
        return [_bounded(item) for item in value[:50]]
    if isinstance(value, dict):
        return {key: _bounded(item) for key, item in list(value.items())[:50]}
    return value
