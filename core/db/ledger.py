"""The evaluation ledger: the only code that writes evaluation rows.

An evaluation moves ``queued -> running -> done`` (and ``running -> queued`` when its worker
lets go of it or its lease expires). Every transition here is one conditional UPDATE (or one
INSERT), so two workers racing for the same row cannot both win: the database decides, and the
loser learns it from the row count.

A worker **claims** an evaluation before any work: the claim writes a lease (an owner and an
expiry) that the worker renews (:func:`heartbeat`) while it runs. A second delivery of the same
evaluation finds a live lease and is dropped; a lease that expired (its worker died) may be
claimed again, and :func:`sweep` puts such rows back in the queue, together with queued rows
whose message was sent long ago and never claimed (a message lost in a broker restart).

Every function takes an ``Engine`` (one transaction of its own) or a ``Session`` (joins the
caller's transaction, e.g. the pipeline's last write with its stage rows and audit entry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import CursorResult, Engine, Executable, case, insert, or_, select, update
from sqlmodel import Session

from core.db.tables import Evaluation
from core.db.types import utcnow

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


# -- reading --------------------------------------------------------------------------------


def inspect(target: Target, evaluation_id: int) -> LedgerRow | None:
    """The row's ledger columns, or None when there is no such evaluation."""
    columns = (
        _c.id,
        _c.product_id,
        _c.window,
        _c.trigger,
        _c.status,
        _c.outcome,
        _c.attempts,
        _c.lease_owner,
        _c.lease_expires_at,
        _c.queued_at,
        _c.dispatched_at,
    )
    _, rows = _execute(target, select(*columns).where(_c.id == evaluation_id))
    if not rows:
        return None
    row = rows[0]
    return LedgerRow(
        int(row.id),
        row.product_id,
        row.window,
        row.trigger,
        EvaluationState(row.status),
        row.outcome,
        int(row.attempts),
        row.lease_owner,
        row.lease_expires_at,
        row.queued_at,
        row.dispatched_at,
    )


def pending_id(target: Target, product_id: str, window: str, trigger: str) -> int | None:
    """The newest queued or running evaluation of this product, window and trigger."""
    _, rows = _execute(
        target,
        select(_c.id)
        .where(
            _c.product_id == product_id,
            _c.window == window,
            _c.trigger == trigger,
            _c.status.in_([state.value for state in PENDING_STATES]),
        )
        .order_by(_c.id.desc())
        .limit(1),
    )
    return int(rows[0].id) if rows else None


# -- queue ----------------------------------------------------------------------------------


def queue_many(
    target: Target, rows: Sequence[NewEvaluation], now: dt.datetime | None = None
) -> list[int]:
    """Insert queued evaluations in one INSERT ... RETURNING; their ids, in order."""
    if not rows:
        return []
    moment = now or utcnow()
    values = [
        {
            "product_id": row.product_id,
            "window": row.window,
            "trigger": row.trigger,
            "status": EvaluationState.QUEUED.value,
            "policy_set_version": row.policy_set_version,
            "queued_at": moment,
            "attempts": 0,
        }
        for row in rows
    ]
    statement = insert(_table).returning(_c.id)
    if isinstance(target, Session):
        ids = target.execute(statement, values).scalars().all()
    else:
        with target.begin() as connection:
            ids = connection.execute(statement, values).scalars().all()
    return [int(row_id) for row_id in ids]


def queue(
    target: Target,
    product_id: str,
    window: str,
    trigger: str,
    policy_set_version: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Insert one queued evaluation; its id."""
    return queue_many(
        target, [NewEvaluation(product_id, window, trigger, policy_set_version)], now
    )[0]


def queue_once(
    target: Target,
    product_id: str,
    window: str,
    trigger: str,
    policy_set_version: int | None = None,
) -> int:
    """The pending evaluation of this product, window and trigger, queued when there is none."""
    existing = pending_id(target, product_id, window, trigger)
    if existing is not None:
        return existing
    return queue(target, product_id, window, trigger, policy_set_version)


def mark_dispatched(target: Target, ids: Sequence[int], now: dt.datetime | None = None) -> int:
    """Record that a message was just sent for these queued evaluations (the sweep's clock)."""
    if not ids:
        return 0
    count, _ = _execute(
        target,
        update(_table)
        .where(_c.id.in_(list(ids)), _c.status == EvaluationState.QUEUED.value)
        .values(dispatched_at=now or utcnow()),
    )
    return count


# -- claim and lease ------------------------------------------------------------------------


def claim(
    target: Target,
    evaluation_id: int,
    owner: str,
    lease_seconds: float,
    max_attempts: int | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Take the evaluation for ``owner`` until ``now + lease_seconds``; True when taken.

    Taken when it is queued, or running under an expired lease (its worker died), or already
    ``owner``'s (a retry in the same worker: attempts are not counted again). Refused when it is
    done, leased by another live worker, or was claimed ``max_attempts`` times already.
    """
    moment = now or utcnow()
    mine = _c.lease_owner == owner
    claimable = or_(
        _c.status == EvaluationState.QUEUED.value,
        (_c.status == EvaluationState.RUNNING.value)
        & or_(_c.lease_expires_at.is_(None), _c.lease_expires_at <= moment, mine),
    )
    condition = (_c.id == evaluation_id) & claimable
    if max_attempts is not None:
        condition = condition & or_(mine, _c.attempts < max_attempts)
    count, _ = _execute(
        target,
        update(_table)
        .where(condition)
        .values(
            status=EvaluationState.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=_lease_until(moment, lease_seconds),
            claimed_at=moment,
            heartbeat_at=moment,
            started_at=case((_c.started_at.is_(None), moment), else_=_c.started_at),
            attempts=case((mine, _c.attempts), else_=_c.attempts + 1),
        ),
    )
    return count == 1


def take_over(
    target: Target,
    evaluation_id: int,
    owner: str,
    dead_owner: str,
    lease_seconds: float,
    now: dt.datetime | None = None,
) -> bool:
    """Take a running evaluation from ``dead_owner`` before its lease expires (the caller
    knows that process is gone: killed on this very host); one more attempt."""
    moment = now or utcnow()
    count, _ = _execute(
        target,
        update(_table)
        .where(
            _c.id == evaluation_id,
            _c.status == EvaluationState.RUNNING.value,
            _c.lease_owner == dead_owner,
        )
        .values(
            lease_owner=owner,
            lease_expires_at=_lease_until(moment, lease_seconds),
            claimed_at=moment,
            heartbeat_at=moment,
            attempts=_c.attempts + 1,
        ),
    )
    return count == 1


def heartbeat(
    target: Target,
    evaluation_id: int,
    owner: str,
    lease_seconds: float,
    now: dt.datetime | None = None,
) -> bool:
    """Renew ``owner``'s lease; False when the lease is no longer its own (lost or finished)."""
    moment = now or utcnow()
    count, _ = _execute(
        target,
        update(_table)
        .where(
            _c.id == evaluation_id,
            _c.status == EvaluationState.RUNNING.value,
            _c.lease_owner == owner,
        )
        .values(lease_expires_at=_lease_until(moment, lease_seconds), heartbeat_at=moment),
    )
    return count == 1


def release(target: Target, evaluation_id: int, owner: str, now: dt.datetime | None = None) -> bool:
    """Give a running evaluation back to the queue (its worker stops without finishing it)."""
    count, _ = _execute(
        target,
        update(_table)
        .where(
            _c.id == evaluation_id,
            _c.status == EvaluationState.RUNNING.value,
            _c.lease_owner == owner,
        )
        .values(
            status=EvaluationState.QUEUED.value,
            lease_owner=None,
            lease_expires_at=None,
            dispatched_at=now or utcnow(),
        ),
    )
    return count == 1


def take_fingerprint(
    target: Target, evaluation_id: int, fingerprint: str, owner: str | None = None
) -> bool:
    """Write the evaluation's key (product, window, fingerprint) while it runs.

    False when the row is no longer this owner's; the unique key itself is the database's to
    enforce (an ``IntegrityError`` when another evaluation of the window holds it).
    """
    condition = (_c.id == evaluation_id) & (_c.status != EvaluationState.DONE.value)
    if owner is not None:
        condition = condition & (_c.lease_owner == owner)
    count, _ = _execute(target, update(_table).where(condition).values(fingerprint=fingerprint))
    return count == 1


def fingerprint_holder(
    target: Target, evaluation_id: int, product_id: str, window: str, fingerprint: str
) -> int | None:
    """Another evaluation of this product and window holding ``fingerprint``, if any."""
    _, rows = _execute(
        target,
        select(_c.id)
        .where(
            _c.product_id == product_id,
            _c.window == window,
            _c.fingerprint == fingerprint,
            _c.id != evaluation_id,
        )
        .limit(1),
    )
    return int(rows[0].id) if rows else None


# -- finish ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finish:
    """What a finished evaluation records."""

    outcome: Outcome
    summary: Mapping[str, Any]
    error: str | None = None
    fingerprint: str | None = None  # the key it answers for (None: keep what it holds)
    spec_commit: str | None = None
    policy_set_version: int | None = None
    release_fingerprint: bool = False  # answered nothing (failed): the same inputs run again


def finish(
    target: Target,
    evaluation_id: int,
    result: Finish,
    owner: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Record the outcome (state done); False when it was done already or is not ``owner``'s.

    Without ``owner`` (a command running one evaluation in-process), any unfinished row is
    finished.
    """
    moment = now or utcnow()
    condition = (_c.id == evaluation_id) & (_c.status != EvaluationState.DONE.value)
    if owner is not None:
        condition = condition & or_(_c.lease_owner == owner, _c.lease_owner.is_(None))
    values: dict[str, Any] = {
        "status": EvaluationState.DONE.value,
        "outcome": result.outcome.value,
        "summary": dict(result.summary),
        "error": result.error[:MAX_ERROR] if result.error else None,
        "finished_at": moment,
        "policy_set_version": result.policy_set_version,
        "lease_owner": None,
        "lease_expires_at": None,
        "started_at": case((_c.started_at.is_(None), moment), else_=_c.started_at),
        # a row finished without a claim (a no-op in-process) was still attempted once
        "attempts": case((_c.attempts == 0, 1), else_=_c.attempts),
    }
    if result.spec_commit is not None:
        values["spec_commit"] = result.spec_commit
    if result.release_fingerprint:
        values["fingerprint"] = None
    elif result.fingerprint is not None:
        values["fingerprint"] = result.fingerprint
    count, _ = _execute(target, update(_table).where(condition).values(**values))
    return count == 1


def fail(
    target: Target,
    evaluation_id: int,
    reason: str,
    owner: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """End an unfinished evaluation as failed (it holds no key: the same inputs run again)."""
    ended = Finish(Outcome.FAILED, {}, reason, release_fingerprint=True)
    return finish(target, evaluation_id, ended, owner, now)


def give_up(
    target: Target, evaluation_id: int, reason: str, now: dt.datetime | None = None
) -> bool:
    """End an evaluation claimed too often without finishing; False when already done."""
    moment = now or utcnow()
    count, _ = _execute(
        target,
        update(_table)
        .where(_c.id == evaluation_id, _c.status != EvaluationState.DONE.value)
        .values(
            status=EvaluationState.DONE.value,
            outcome=Outcome.GIVEN_UP.value,
            error=reason[:MAX_ERROR],
            finished_at=moment,
            fingerprint=None,
            lease_owner=None,
            lease_expires_at=None,
        ),
    )
    return count == 1


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


__all__ = [
    "PENDING_STATES",
    "EvaluationState",
    "Finish",
    "LedgerRow",
    "NewEvaluation",
    "Outcome",
    "SweepResult",
    "claim",
    "fail",
    "fingerprint_holder",
    "finish",
    "give_up",
    "heartbeat",
    "inspect",
    "mark_dispatched",
    "pending_id",
    "queue",
    "queue_many",
    "queue_once",
    "redispatch_stale",
    "release",
    "requeue_expired",
    "sweep",
    "take_fingerprint",
    "take_over",
]
