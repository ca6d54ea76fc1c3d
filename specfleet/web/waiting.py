""" "Waiting for me": an owner's open merge requests across their products, what needs them,
and the one-click (and bulk) approve-and-merge of the verified-green ones.

Reading is :func:`waiting_for` (one pass over the owner's products); acting is
:func:`approve_and_merge`, which goes through the same audited forge actions as the merge
request page and merges only what is verified green, and only where the policy set lets an
owner merge their own product's merge request (``fleet.yaml``: ``merge_requests.owners_merge``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from specfleet.core.db import Evaluation, MergeRequest, Product, Proposal
from specfleet.core.errors import MergeRequestRefused, SpecfleetError
from specfleet.web.actions import act_on_merge_request
from specfleet.web.auth import Identity
from specfleet.web.deps import WebContext
from specfleet.worker.pipeline.deferral import latest_fleet_rules
from specfleet.worker.review import ReviewFacts, diff_size, review_facts

DEFAULT_MERGER = "a platform account"


@dataclass(frozen=True)
class WaitingRequest:
    merge_request: MergeRequest
    facts: ReviewFacts
    size: tuple[int, int, int] | None  # files, lines added, lines removed (local forge)

    @property
    def one_click(self) -> bool:
        return self.facts.green and self.merge_request.forge == "local"


@dataclass(frozen=True)
class NeedsHuman:
    product_id: str
    evaluation_id: int
    window: str
    reason: str


@dataclass(frozen=True)
class Deferred:
    product_id: str
    title: str
    reason: str
    tier: str


@dataclass(frozen=True)
class MergePolicy:
    owners_merge: bool
    merged_by: str


@dataclass(frozen=True)
class WaitingView:
    requests: tuple[WaitingRequest, ...]
    needs_human: tuple[NeedsHuman, ...]
    deferred: tuple[Deferred, ...]
    policy: MergePolicy

    @property
    def green(self) -> tuple[WaitingRequest, ...]:
        return tuple(r for r in self.requests if r.one_click)


def merge_policy(context: WebContext) -> MergePolicy:
    rules = latest_fleet_rules(context.engine).get("merge_requests") or {}
    return MergePolicy(
        owners_merge=bool(rules.get("owners_merge", True)),
        merged_by=str(rules.get("merged_by") or DEFAULT_MERGER),
    )


def owned_products(context: WebContext, identity: Identity) -> list[Product]:
    with Session(context.engine) as session:
        products = session.exec(select(Product).where(col(Product.active).is_(True))).all()
    return [p for p in products if identity.owns(tuple(p.owners))]


def waiting_for(context: WebContext, identity: Identity) -> WaitingView:
    products = owned_products(context, identity)
    ids = [p.id for p in products]
    with Session(context.engine) as session:
        rows = session.exec(
            select(MergeRequest)
            .where(col(MergeRequest.product_id).in_(ids), MergeRequest.state == "open")
            .order_by(col(MergeRequest.id))
        ).all()
        changes = _changes_by_key(session, ids)
        needs_human = _needs_human(session, ids)
        deferred = tuple(
            Deferred(
                row.product_id,
                row.title,
                row.deferred_reason or "",
                str((row.priority or {}).get("tier", "")),
            )
            for row in session.exec(
                select(Proposal)
                .where(col(Proposal.product_id).in_(ids), Proposal.state == "deferred")
                .order_by(col(Proposal.id))
            ).all()
        )
    requests = tuple(
        WaitingRequest(
            row,
            review_facts(
                row.description,
                changes.get((row.product_id, row.proposal_key or "")),
                row.labels,
            ),
            _size(context, row),
        )
        for row in rows
    )
    return WaitingView(requests, needs_human, deferred, merge_policy(context))


def approve_and_merge(
    context: WebContext, identity: Identity, merge_request_ids: Iterable[int]
) -> list[str]:
    """Approve each verified-green merge request and merge it when the policy set lets owners
    merge; one line per merge request saying what happened (a refusal does not stop the rest)."""
    policy = merge_policy(context)
    said: list[str] = []
    for merge_request_id in merge_request_ids:
        try:
            said.append(_approve_and_merge_one(context, identity, merge_request_id, policy))
        except MergeRequestRefused as refused:
            said.append(f"!{merge_request_id}: not merged: {refused}")
    return said


def _approve_and_merge_one(
    context: WebContext, identity: Identity, merge_request_id: int, policy: MergePolicy
) -> str:
    with Session(context.engine) as session:
        row = session.get(MergeRequest, merge_request_id)
        if row is None:
            raise MergeRequestRefused(f"no merge request {merge_request_id}")
        proposal_changes = _changes_by_key(session, [row.product_id]).get(
            (row.product_id, row.proposal_key or "")
        )
    facts = review_facts(row.description, proposal_changes, row.labels)
    if not facts.green:
        raise MergeRequestRefused(
            f"merge request {merge_request_id} is not verified green ({facts.verdict}); "
            "review it on its page"
        )
    act_on_merge_request(context, identity, merge_request_id, "approve")
    if not policy.owners_merge:
        return f"!{merge_request_id} approved; the policy set has {policy.merged_by} merge it"
    act_on_merge_request(context, identity, merge_request_id, "merge")
    return f"!{merge_request_id} approved and merged"


def _changes_by_key(
    session: Session, product_ids: Sequence[str]
) -> dict[tuple[str, str], dict[str, Any]]:
    rows = session.exec(
        select(Proposal.product_id, Proposal.key, Proposal.changes).where(
            col(Proposal.product_id).in_(list(product_ids))
        )
    ).all()
    return {(pid, key): dict(changes or {}) for pid, key, changes in rows}


def _needs_human(session: Session, product_ids: Sequence[str]) -> tuple[NeedsHuman, ...]:
    """Products whose latest finished evaluation ended needs-human, with the reason."""
    latest: dict[str, Evaluation] = {}
    for row in session.exec(
        select(Evaluation)
        .where(col(Evaluation.product_id).in_(list(product_ids)), Evaluation.status == "done")
        .order_by(col(Evaluation.id))
    ).all():
        latest[row.product_id] = row
    return tuple(
        NeedsHuman(
            row.product_id,
            row.id or 0,
            row.window,
            str((row.summary or {}).get("reason") or row.error or "no reason was recorded"),
        )
        for row in latest.values()
        if row.outcome == "needs-human"
    )


def _size(context: WebContext, row: MergeRequest) -> tuple[int, int, int] | None:
    if row.forge != "local" or row.id is None:
        return None
    try:
        return diff_size(context.forge.diff(row.id, max_bytes=500_000))
    except SpecfleetError:
        return None
