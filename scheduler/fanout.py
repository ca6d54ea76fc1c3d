"""Fan-out: turn "these products must be re-evaluated" into queued evaluations and messages.

The evaluation table is the record (rows with status ``queued``); the broker carries one
message per row so that a worker picks it up. Rows are written in batches (one query to find
what the window already has, one INSERT ... RETURNING per batch) and each committed batch is
handed to ``dispatch`` (the worker's enqueue function, passed in: the scheduler does not import
Celery). Queuing is idempotent: a product that already has an evaluation for the window (or a
pending one) is not queued twice; a message sent twice is harmless because evaluations are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import Evaluation, Product, ledger, session_scope
from specfleet.core.windows import iso_week
from specfleet.scheduler.due import (
    PENDING_STATUSES,
    DueDecision,
    ProductFacts,
    Schedule,
    WindowEvaluation,
    decide_due,
)

Dispatch = Callable[[Sequence[int]], None]
"""Enqueue one message per evaluation id (called once per committed batch)."""

PauseCheck = Callable[[], bool]
"""True when the fleet is paused (asked before each batch of a fan-out)."""

DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class FanOutResult:
    """What one fan-out did: the evaluations it queued and why the others were left alone."""

    window: str
    trigger: str
    queued: list[int]
    decisions: list[DueDecision] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(1 for decision in self.decisions if not decision.due)


def batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def fan_out_window(
    engine: Engine,
    schedule: Schedule,
    window: str,
    now: dt.datetime | None,
    dispatch: Dispatch | None = None,
    batch_size: int = DEFAULT_BATCH,
    trigger: str = "weekly",
    pause_check: PauseCheck | None = None,
) -> FanOutResult:
    """Queue (and dispatch) an evaluation for every product due in ``window``.

    Two queries decide (registered products, the window's existing evaluations); then one
    INSERT per batch. Callers that may run concurrently (two schedulers) hold the window lock.
    """
    with session_scope(engine) as session:
        products = [
            ProductFacts(product_id, bool(active))
            for product_id, active in session.exec(
                select(Product.id, Product.active).order_by(col(Product.id))
            ).all()
        ]
        existing = [
            WindowEvaluation(product_id, row_trigger, status)
            for product_id, row_trigger, status in session.exec(
                select(Evaluation.product_id, Evaluation.trigger, Evaluation.status).where(
                    Evaluation.window == window
                )
            ).all()
        ]
    decisions = decide_due(products, existing, schedule, window, now)
    due = [decision.product_id for decision in decisions if decision.due]
    queued = insert_and_dispatch(
        engine, due, window, trigger, None, dispatch, batch_size, pause_check
    )
    return FanOutResult(window, trigger, queued, decisions)


def insert_and_dispatch(
    engine: Engine,
    product_ids: Sequence[str],
    window: str,
    trigger: str,
    policy_set_version: int | None,
    dispatch: Dispatch | None,
    batch_size: int = DEFAULT_BATCH,
    pause_check: PauseCheck | None = None,
) -> list[int]:
    """Insert queued evaluations in batches; dispatch each batch once it is committed.

    ``pause_check`` is asked before each batch is sent: once the fleet is paused (even in the
    middle of a fan-out) the remaining batches are recorded as queued but not sent; the sweep
    sends them after ``fleet resume``.
    """
    queued: list[int] = []
    held = False
    for chunk in batched(product_ids, batch_size):
        rows = [
            ledger.NewEvaluation(product_id, window, trigger, policy_set_version)
            for product_id in chunk
        ]
        ids = ledger.queue_many(engine, rows)
        held = held or (pause_check is not None and pause_check())
        # dispatched only after commit: a worker must find the row its message names
        if dispatch is not None and ids and not held:
            dispatch(ids)
        queued.extend(ids)
    return queued


def queue_policy_evaluations(
    engine: Engine,
    product_ids: Sequence[str],
    policy_version: int,
    today: dt.date | None = None,
    dispatch: Dispatch | None = None,
    pause_check: PauseCheck | None = None,
) -> int:
    """Queue a ``policy`` evaluation of each product in this week's window; returns how many.

    Called when a policy set is published; with ``dispatch`` the evaluations are also sent to
    the workers (without it they wait for ``fan_out_policy`` or ``run-window`` to send them).
    """
    window = iso_week(today or dt.date.today())
    with session_scope(engine) as session:
        already = set(
            session.exec(
                select(Evaluation.product_id).where(
                    col(Evaluation.product_id).in_(list(product_ids)),
                    Evaluation.window == window,
                    Evaluation.trigger == "policy",
                    Evaluation.status == "queued",
                )
            ).all()
        )
    wanted = [product_id for product_id in dict.fromkeys(product_ids) if product_id not in already]
    queued = insert_and_dispatch(
        engine, wanted, window, "policy", policy_version, dispatch, DEFAULT_BATCH, pause_check
    )
    return len(queued)


def queued_evaluation_ids(
    engine: Engine,
    window: str | None = None,
    trigger: str | None = None,
    policy_set_version: int | None = None,
    queued_before: dt.datetime | None = None,
) -> list[int]:
    """Ids of evaluations still waiting for a worker, oldest first, filtered as given."""
    query = select(Evaluation.id).where(Evaluation.status == "queued")
    if window is not None:
        query = query.where(Evaluation.window == window)
    if trigger is not None:
        query = query.where(Evaluation.trigger == trigger)
    if policy_set_version is not None:
        query = query.where(Evaluation.policy_set_version == policy_set_version)
    if queued_before is not None:
        query = query.where(col(Evaluation.queued_at) < queued_before)
    with session_scope(engine) as session:
        found = session.exec(query.order_by(col(Evaluation.id))).all()
    return [int(row_id) for row_id in found if row_id is not None]


def running_evaluation_ids(engine: Engine, window: str) -> list[int]:
    """Ids of the window's evaluations a worker has started and not finished."""
    query = select(Evaluation.id).where(Evaluation.window == window, Evaluation.status == "running")
    with session_scope(engine) as session:
        found = session.exec(query.order_by(col(Evaluation.id))).all()
    return [int(row_id) for row_id in found if row_id is not None]


def dispatch_in_batches(
    ids: Sequence[int],
    dispatch: Dispatch,
    batch_size: int = DEFAULT_BATCH,
    pause_check: PauseCheck | None = None,
) -> int:
    """Send existing evaluations to the workers again (lost messages, a policy fan-out);
    how many were sent (fewer when a pause, checked before each batch, stopped it)."""
    sent = 0
    for start in range(0, len(ids), batch_size):
        if pause_check is not None and pause_check():
            break
        batch = ids[start : start + batch_size]
        dispatch(batch)
        sent += len(batch)
    return sent


def window_progress(
    engine: Engine, window: str, ids: Sequence[int] | None = None
) -> dict[str, int]:
    """How many of the window's evaluations (or of ``ids``) are in each status."""
    counts: dict[str, int] = {}
    query = select(Evaluation.status).where(Evaluation.window == window)
    if ids is not None:
        query = query.where(col(Evaluation.id).in_(list(ids)))
    with session_scope(engine) as session:
        for status in session.exec(query).all():
            counts[status] = counts.get(status, 0) + 1
    return counts


__all__ = [
    "PENDING_STATUSES",
    "Dispatch",
    "FanOutResult",
    "dispatch_in_batches",
    "fan_out_window",
    "insert_and_dispatch",
    "queue_policy_evaluations",
    "queued_evaluation_ids",
    "window_progress",
]
