"""The ledger's transitions: each one conditional UPDATE (or one INSERT)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, insert, or_, select, update
from sqlmodel import Session

from specfleet.core.db.ledger.states import (
    MAX_ERROR,
    PENDING_STATES,
    EvaluationState,
    LedgerRow,
    NewEvaluation,
    Outcome,
    Target,
    _c,
    _execute,
    _lease_until,
    _table,
)
from specfleet.core.db.types import utcnow

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
