"""Merge-request tracking: poll the forges for open merge requests and record what happened.

A merge request merged or closed on the forge is recorded on its ``MergeRequest`` row and on
its proposal (``merged`` / ``closed``); a proposal closed without merging is then never
proposed again until its inputs change (DESIGN section 7). The forge for a row is looked up
through ``forge_for`` (wiring lives in the entry points); rows of a forge with no adapter
are left alone and counted. A project is the product's ``forge_project``, else its id (the
local forge names projects after products).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import AuditEntry, MergeRequest, Product, Proposal, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import ForgeError, MergeRequestNotFound
from specfleet.core.forges.interface import Forge, MergeRequestState

ForgeFor = Callable[[Product], Forge]
"""The forge adapter of a product (the pipeline's ``PipelineDeps.forge_for``)."""


@dataclass(frozen=True)
class Transition:
    """A merge request whose forge state differs from the recorded one."""

    state: str
    head_commit: str | None
    approvals: tuple[str, ...]


def decide_transition(recorded_state: str, observed: MergeRequestState) -> Transition | None:
    """What to record for a row in ``recorded_state`` after the forge reported ``observed``."""
    if observed.state == recorded_state:
        return None
    if recorded_state in {"merged", "closed"}:
        return None  # a finished merge request never reopens in our records
    return Transition(observed.state, observed.head_commit, observed.approvals)


@dataclass
class TrackingReport:
    checked: int = 0
    merged: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)
    no_forge: int = 0


def track_merge_requests(
    engine: Engine, forge_for: ForgeFor, now: dt.datetime | None = None
) -> TrackingReport:
    """Poll every open merge request once; record merged and closed ones."""
    report = TrackingReport()
    with session_scope(engine) as session:
        rows = session.exec(
            select(MergeRequest, Product)
            .join(Product, col(Product.id) == col(MergeRequest.product_id))
            .where(MergeRequest.state == "open")
            .order_by(col(MergeRequest.id))
        ).all()
        pending = [(row.id, row.forge, row.forge_ref, product) for row, product in rows]
    for row_id, forge_name, ref, product in pending:
        try:
            forge = forge_for(product)
        except ForgeError:
            forge = None
        if forge is None or forge.name != forge_name or ref is None or row_id is None:
            # the product moved to another forge, or this process has no adapter for it
            report.no_forge += 1
            continue
        report.checked += 1
        try:
            observed = forge.merge_request(product.forge_project or product.id, ref)
        except MergeRequestNotFound:
            # deleted on the forge: as good as closed without merging
            _record(engine, row_id, "closed", None, (), now, "merge-request-vanished")
            report.vanished.append(row_id)
            continue
        except ForgeError:
            report.unreachable.append(row_id)  # transient or refused: next poll tries again
            continue
        transition = decide_transition("open", observed)
        if transition is None:
            continue
        _record(engine, row_id, transition.state, transition.head_commit, transition.approvals, now)
        (report.merged if transition.state == "merged" else report.closed).append(row_id)
    return report


def _record(
    engine: Engine,
    row_id: int,
    state: str,
    head_commit: str | None,
    approvals: tuple[str, ...],
    now: dt.datetime | None,
    action: str | None = None,
) -> None:
    moment = now or utcnow()
    with session_scope(engine) as session:
        row = session.get(MergeRequest, row_id)
        if row is None or row.state != "open":
            return  # someone (the web console, another tracker) recorded it first
        row.state = state
        row.updated_at = moment
        if head_commit:
            row.head_commit = head_commit
        if approvals:
            row.approvals = list(approvals)
        if state == "merged":
            row.merged_at = moment
        elif state == "closed":
            row.closed_at = moment
        proposal = None
        if row.proposal_id is not None:
            proposal = session.get(Proposal, row.proposal_id)
        elif row.proposal_key is not None:
            proposal = session.exec(
                select(Proposal).where(
                    Proposal.product_id == row.product_id, Proposal.key == row.proposal_key
                )
            ).first()
        if proposal is not None and state in {"merged", "closed"}:
            proposal.state = state
            session.add(proposal)
        session.add(row)
        session.add(
            AuditEntry(
                at=moment,
                actor="specfleet-tracker",
                action=action or f"merge-request-{state}",
                subject_type="merge_request",
                subject_id=str(row_id),
                detail={"product": row.product_id, "forge": row.forge, "ref": row.forge_ref},
            )
        )
