"""The sweep: expired leases back to the queue, stale queued messages sent again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, or_, update

from specfleet.core.db.ledger.states import EvaluationState, Target, _c, _execute, _table
from specfleet.core.db.types import utcnow

# -- sweep ----------------------------------------------------------------------------------


def requeue_expired(target: Target, now: dt.datetime | None = None) -> list[int]:
    """Put running evaluations whose lease expired back in the queue; their ids."""
    moment = now or utcnow()
    _, rows = _execute(
        target,
        update(_table)
        .where(
            _c.status == EvaluationState.RUNNING.value,
            or_(_c.lease_expires_at.is_(None), _c.lease_expires_at <= moment),
        )
        .values(
            status=EvaluationState.QUEUED.value,
            lease_owner=None,
            lease_expires_at=None,
            dispatched_at=moment,
        )
        .returning(_c.id),
    )
    return sorted(int(row.id) for row in rows)


def redispatch_stale(
    target: Target, stale_after_seconds: float, now: dt.datetime | None = None
) -> list[int]:
    """Queued evaluations whose last message is older than ``stale_after_seconds`` and was
    never claimed; they are stamped as sent now (the caller sends them)."""
    moment = now or utcnow()
    cutoff = moment - dt.timedelta(seconds=stale_after_seconds)
    sent = case((_c.dispatched_at.is_(None), _c.queued_at), else_=_c.dispatched_at)
    _, rows = _execute(
        target,
        update(_table)
        .where(_c.status == EvaluationState.QUEUED.value, sent < cutoff)
        .values(dispatched_at=moment)
        .returning(_c.id),
    )
    return sorted(int(row.id) for row in rows)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep found: expired leases re-queued and stale queued rows to send again."""

    expired: list[int]
    stale: list[int]

    @property
    def to_send(self) -> list[int]:
        return sorted({*self.expired, *self.stale})


def sweep(
    target: Target, stale_after_seconds: float, now: dt.datetime | None = None
) -> SweepResult:
    """Re-queue expired leases and pick stale queued rows; the caller sends ``to_send``."""
    moment = now or utcnow()
    stale = redispatch_stale(target, stale_after_seconds, moment)
    expired = requeue_expired(target, moment)
    return SweepResult(expired, stale)
