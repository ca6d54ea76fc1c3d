"""The ledger's states, outcomes and row snapshots, and how it executes a statement."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import CursorResult, Engine, Executable
from sqlmodel import Session

from specfleet.core.db.tables import Evaluation

_table = Evaluation.__table__  # type: ignore[attr-defined]
_c = _table.c

MAX_ERROR = 4000


class EvaluationState(StrEnum):
    """Where an evaluation is (the ``status`` column)."""

    QUEUED = "queued"  # waiting for a worker to claim it
    RUNNING = "running"  # claimed: a worker holds its lease
    DONE = "done"  # finished with an outcome; never changes again


class Outcome(StrEnum):
    """How a finished evaluation ended (the ``outcome`` column)."""

    NO_OP = "no-op"
    PROPOSED = "proposed"
    NO_CHANGE = "no-change"
    UNCHANGED = "unchanged"
    SUPPRESSED = "suppressed"
    NEEDS_HUMAN = "needs-human"
    CONFLICT = "conflict"
    FAILED = "failed"
    GIVEN_UP = "given-up"  # claimed too often without finishing (its workers kept dying)


PENDING_STATES = frozenset({EvaluationState.QUEUED, EvaluationState.RUNNING})

Target = Engine | Session


@dataclass(frozen=True)
class LedgerRow:
    """An evaluation as the ledger sees it (a snapshot, detached from any session)."""

    id: int
    product_id: str
    window: str
    trigger: str
    state: EvaluationState
    outcome: str | None
    attempts: int
    lease_owner: str | None
    lease_expires_at: dt.datetime | None
    queued_at: dt.datetime
    dispatched_at: dt.datetime | None

    def lease_live(self, now: dt.datetime) -> bool:
        return (
            self.state == EvaluationState.RUNNING
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


@dataclass(frozen=True)
class NewEvaluation:
    """A row to queue."""

    product_id: str
    window: str
    trigger: str
    policy_set_version: int | None = None


def _execute(target: Target, statement: Executable) -> tuple[int, list[Any]]:
    """Run ``statement``; (rows affected, rows returned)."""
    if isinstance(target, Session):
        result = target.execute(statement)
        return _materialise(result)
    with target.begin() as connection:
        return _materialise(connection.execute(statement))


def _materialise(result: Any) -> tuple[int, list[Any]]:
    if result.returns_rows:
        rows = list(result.all())
        return len(rows), rows
    count = result.rowcount if isinstance(result, CursorResult) else 0
    return max(count, 0), []


def _lease_until(now: dt.datetime, lease_seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=lease_seconds)
