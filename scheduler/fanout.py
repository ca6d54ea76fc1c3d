"""Fan-out: turn "these products must be re-evaluated" into queued evaluations.

For now the queue is the evaluation table itself (rows with status ``queued``); the worker
issue dispatches them to Celery. Queuing is idempotent: a product that already has a queued
evaluation for the same window and trigger is not queued twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import col, select

from core.db import Evaluation, session_scope
from core.db.types import utcnow
from core.windows import iso_week


def queue_policy_evaluations(
    engine: Engine, product_ids: Sequence[str], policy_version: int, today: dt.date | None = None
) -> int:
    """Queue a ``policy`` evaluation of each product in this week's window; returns how many."""
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
        now = utcnow()
        queued = 0
        for product_id in product_ids:
            if product_id in already:
                continue
            session.add(
                Evaluation(
                    product_id=product_id,
                    window=window,
                    trigger="policy",
                    status="queued",
                    policy_set_version=policy_version,
                    queued_at=now,
                )
            )
            queued += 1
    return queued
