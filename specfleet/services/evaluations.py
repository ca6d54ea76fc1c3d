"""Ask for a product's evaluation by hand (pause-aware) and for an amendment of its spec."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

from specfleet.core.db import AuditEntry, Product, session_scope
from specfleet.core.errors import FleetPaused, InputError, ProductNotFound
from specfleet.core.windows import iso_week

# who may act on a product: the caller's check, given the product's id and owners; raises to refuse
Authorize = Callable[[str, Sequence[str]], None]
NO_LLM = (
    "amendments are drafted by an LLM and no endpoint is configured: set "
    "SPECFLEET_LLM_BASE_URL (and SPECFLEET_LLM_API_KEY, SPECFLEET_LLM_MODEL); nothing was recorded"
)


@dataclass(frozen=True)
class EvaluationRequested:
    """A queued (or already waiting) evaluation; the workers or ``--now`` run it."""

    evaluation_id: int
    product_id: str
    window: str
    trigger: str


@dataclass(frozen=True)
class AmendmentRequested:
    """A recorded amendment request and the evaluation queued to draft and implement it."""

    request_id: int
    evaluation_id: int
    product_id: str


def active_product_owners(engine: Engine, product_id: str) -> list[str]:
    """The owners of a registered product; ProductNotFound when it is not (or no longer)."""
    with Session(engine) as session:
        product = session.get(Product, product_id)
    if product is None or not product.active:
        raise ProductNotFound(f"no product {product_id!r} is registered")
    return list(product.owners)


def refuse_when_paused(engine: Engine) -> None:
    """FleetPaused (saying who paused it, since when and why) while the fleet is paused."""
    from specfleet.scheduler.pause import fleet_paused

    pause = fleet_paused(engine)
    if pause is not None:
        why = f" ({pause.reason})" if pause.reason else ""
        raise FleetPaused(
            f"the fleet is paused by {pause.actor} since {pause.since:%Y-%m-%d %H:%M} UTC{why}: "
            "nothing queued"
        )


def request_evaluation(
    engine: Engine,
    actor: str,
    product_id: str,
    window: str | None = None,
    trigger: str = "manual",
    force: bool = False,
    authorize: Authorize | None = None,
) -> EvaluationRequested:
    """Queue an evaluation of the product (this week unless ``window``) and audit who asked.

    Refused while the fleet is paused unless ``force``; an evaluation already waiting for the
    same window and trigger is returned instead of a second one.
    """
    owners = active_product_owners(engine, product_id)
    if authorize is not None:
        authorize(product_id, owners)
    if not force:
        refuse_when_paused(engine)
    chosen = window or iso_week(dt.date.today())
    evaluation_id = _queue(engine, product_id, chosen, trigger)
    with session_scope(engine) as session:
        session.add(
            AuditEntry(
                actor=actor,
                action="evaluation.requested",
                subject_type="product",
                subject_id=product_id,
                detail={"evaluation": evaluation_id, "window": chosen, "trigger": trigger},
            )
        )
    return EvaluationRequested(evaluation_id, product_id, chosen, trigger)


def _queue(engine: Engine, product_id: str, window: str, trigger: str) -> int:
    try:
        from specfleet.worker.pipeline import queue_evaluation
    except ImportError:  # a console installed without the pipeline still records the request
        from specfleet.core.db import ledger

        return ledger.queue_once(engine, product_id, window, trigger)
    return queue_evaluation(engine, product_id, window, trigger)


def request_amendment(
    engine: Engine,
    actor: str,
    product_id: str,
    requirement: str,
    why: str | None,
    llm_configured: bool,
    authorize: Authorize | None = None,
) -> AmendmentRequested:
    """Record an owner's amendment request and queue its evaluation (trigger ``amendment``).

    Refused, with nothing recorded, when no LLM endpoint is configured: the LLM drafts it.
    """
    from specfleet.agent.amend import AmendmentAsk
    from specfleet.worker.pipeline.amend import request_amendment as record

    owners = active_product_owners(engine, product_id)
    if authorize is not None:
        authorize(product_id, owners)
    ask = AmendmentAsk(requirement, why or None)
    if not llm_configured:
        raise InputError(NO_LLM)
    queued = record(engine, product_id, ask, actor, iso_week(dt.date.today()))
    return AmendmentRequested(queued.request_id, queued.evaluation_id, product_id)
