"""Read what the digest decides over from the registry: products, open MRs, needs-human,
automerges not yet announced.

The only I/O of the digest: rows in, the frozen facts of ``specfleet.core.notify.digest`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from specfleet.core.db import (
    AutomergeRecord,
    Evaluation,
    MergeRequest,
    NotificationOptOut,
    NotificationSent,
    Product,
    Proposal,
    session_scope,
)
from specfleet.core.notify.digest import (
    Automerged,
    NeedsHuman,
    ProductFacts,
    WaitingMergeRequest,
    rules_from_description,
    rules_from_summary,
    verdict_of,
    what_to_do,
)

MAX_REASON = 500
# An automerge told to one owner is a ``notification_sent`` row of this kind and channel, keyed
# by the automerge record's id: unique per owner, like every other notification.
ANNOUNCED_KIND = "automerge"
ANNOUNCED_CHANNEL = "digest"


@dataclass(frozen=True)
class FleetFacts:
    """Everything the digests of one run are decided from."""

    products: tuple[ProductFacts, ...]
    merge_requests: tuple[WaitingMergeRequest, ...]
    needs_human: tuple[NeedsHuman, ...]
    opted_out: frozenset[str]
    automerged: tuple[Automerged, ...] = ()


def gather(engine: Engine) -> FleetFacts:
    """Active products, their open merge requests, their needs-human evaluations and their
    automerges some owner was not told about yet."""
    with session_scope(engine) as session:
        products = session.exec(select(Product).where(col(Product.active).is_(True))).all()
        facts = tuple(ProductFacts(p.id, p.name, tuple(p.owners)) for p in products)
        ids = {product.id for product in products}
        requests = _waiting(session, ids)
        stuck = _needs_human(session, ids)
        merged = _automerged(session, ids)
        opted = frozenset(
            row.owner.casefold() for row in session.exec(select(NotificationOptOut)).all()
        )
    return FleetFacts(facts, requests, stuck, opted, merged)


def unannounced_automerges(engine: Engine) -> list[AutomergeRecord]:
    """Automerges not yet announced to every owner of their product, oldest first."""
    with Session(engine) as session:
        return list(session.exec(_unannounced()).all())


def _unannounced() -> SelectOfScalar[AutomergeRecord]:
    return (
        select(AutomergeRecord)
        .where(col(AutomergeRecord.announced_at).is_(None))
        .order_by(col(AutomergeRecord.id))
    )


def _automerged(session: Session, ids: set[str]) -> tuple[Automerged, ...]:
    records = [row for row in session.exec(_unannounced()).all() if row.product_id in ids]
    told = told_owners(session, [row.id or 0 for row in records])
    return tuple(
        Automerged(
            record_id=row.id or 0,
            product_id=row.product_id,
            merge_request_id=row.merge_request_id,
            title=row.title,
            level=row.level,
            merged_at=row.merged_at,
            merged_commit=row.merged_commit,
            revert_merge_request_id=row.revert_merge_request_id,
            announced_to=told.get(row.id or 0, frozenset()),
        )
        for row in records
    )


def told_owners(session: Session, record_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    """For each automerge record, the (casefolded) owners a digest already told about it."""
    if not record_ids:
        return {}
    rows = session.exec(
        select(NotificationSent.key, NotificationSent.owner).where(
            NotificationSent.kind == ANNOUNCED_KIND,
            NotificationSent.channel == ANNOUNCED_CHANNEL,
            col(NotificationSent.key).in_([str(record_id) for record_id in record_ids]),
        )
    ).all()
    told: dict[int, set[str]] = {}
    for key, owner in rows:
        told.setdefault(int(key), set()).add(owner.casefold())
    return {record_id: frozenset(owners) for record_id, owners in told.items()}


def opted_out(engine: Engine) -> frozenset[str]:
    with session_scope(engine) as session:
        rows = session.exec(select(NotificationOptOut)).all()
        return frozenset(row.owner.casefold() for row in rows)


def needs_human_of(engine: Engine, evaluation_id: int) -> tuple[ProductFacts, NeedsHuman] | None:
    """The needs-human facts of one evaluation, or None when it did not end that way."""
    with session_scope(engine) as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None or evaluation.outcome != "needs-human":
            return None
        product = session.get(Product, evaluation.product_id)
        if product is None:
            return None
        item = _needs_human_item(evaluation)
        return ProductFacts(product.id, product.name, tuple(product.owners)), item


def _waiting(session: Session, ids: set[str]) -> tuple[WaitingMergeRequest, ...]:
    rows = session.exec(
        select(MergeRequest, Proposal, Evaluation)
        .join(Proposal, col(Proposal.id) == col(MergeRequest.proposal_id), isouter=True)
        .join(Evaluation, col(Evaluation.id) == col(Proposal.evaluation_id), isouter=True)
        .where(MergeRequest.state == "open")
        .order_by(col(MergeRequest.id))
    ).all()
    waiting = []
    for request, proposal, evaluation in rows:
        if request.product_id not in ids:
            continue
        summary = evaluation.summary if evaluation is not None else None
        verification = (summary or {}).get("verification")
        rules = rules_from_summary(summary)
        if rules is None:
            text = request.description or (proposal.description if proposal else "")
            rules = rules_from_description(text)
        waiting.append(
            WaitingMergeRequest(
                product_id=request.product_id,
                title=request.title,
                url=request.url or "",
                verdict=verdict_of(request.draft, str(verification) if verification else None),
                rules=rules,
            )
        )
    return tuple(waiting)


def _needs_human(session: Session, ids: set[str]) -> tuple[NeedsHuman, ...]:
    """Products whose latest finished evaluation ended needs-human (a later one supersedes)."""
    rows: Sequence[Evaluation] = session.exec(
        select(Evaluation)
        .where(Evaluation.status == "done", col(Evaluation.outcome).is_not(None))
        .order_by(col(Evaluation.finished_at), col(Evaluation.id))
    ).all()
    latest: dict[str, Evaluation] = {}
    for row in rows:
        if row.outcome != "failed":  # a crash says nothing about the product
            latest[row.product_id] = row
    return tuple(
        _needs_human_item(row)
        for product_id, row in sorted(latest.items())
        if product_id in ids and row.outcome == "needs-human"
    )


def _needs_human_item(evaluation: Evaluation) -> NeedsHuman:
    summary = evaluation.summary or {}
    reason = str(summary.get("reason") or evaluation.error or "no verified candidate")
    reason = " ".join(reason.split())[:MAX_REASON]
    return NeedsHuman(evaluation.product_id, evaluation.id or 0, reason, what_to_do(reason))
