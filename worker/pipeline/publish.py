"""Stage 8, publish: open or update the product's one merge request, or say why not.

The decision is :func:`specfleet.core.forges.decisions.decide_publication` over the product's
merge-request and proposal rows; the forge's ``ensure_*`` calls make a retried publication
harmless. The Proposal row is written before the merge request so the forge links them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from specfleet.core.db import MergeRequest, Product, Proposal, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.forges.decisions import MergeRequestRecord, ProposalRecord, decide_publication
from specfleet.core.forges.interface import (
    EVERGREEN_BRANCH,
    BranchPush,
    Forge,
    MergeRequestParams,
    MergeRequestState,
)
from specfleet.core.forges.local import LocalForge
from specfleet.worker.pipeline.apply import Candidate
from specfleet.worker.pipeline.deferral import hold_back

LABELS = ("specfleet", "dependencies")


@dataclass(frozen=True)
class Publication:
    outcome: str  # proposed, unchanged, suppressed or no-change
    reason: str
    url: str | None = None
    ref: str | None = None
    created: bool = False


def publish(
    *,
    engine: Engine,
    forge: Forge,
    product: Product,
    owners: tuple[str, ...],
    evaluation_id: int,
    mirror: Path,
    candidate: Candidate,
    description: str,
    branch: str = EVERGREEN_BRANCH,
    labels: tuple[str, ...] = LABELS,
) -> Publication:
    """Open or update the merge request from ``branch`` (the evergreen one unless an owner's
    amendment gets its own), unless the decision says this proposal needs none."""
    project = product.forge_project or product.id
    with session_scope(engine) as session:
        requests = [
            row
            for row in session.exec(
                select(MergeRequest)
                .where(MergeRequest.product_id == product.id, MergeRequest.forge == forge.name)
                .order_by(col(MergeRequest.id))
            ).all()
            if (row.branch or EVERGREEN_BRANCH) == branch
        ]
        proposals = session.exec(
            select(Proposal).where(Proposal.product_id == product.id).order_by(col(Proposal.id))
        ).all()
        decision = decide_publication(
            candidate.key,
            [MergeRequestRecord.from_row(row) for row in requests],
            [ProposalRecord.from_row(row) for row in proposals],
        )
        known = {row.forge_ref or str(row.id): row.url for row in requests}
    if decision.action == "suppressed":
        return Publication(
            "suppressed", decision.reason, known.get(decision.merge_request_ref or "")
        )
    if decision.action == "unchanged":
        ref = decision.merge_request_ref
        return Publication("unchanged", decision.reason, known.get(ref or ""), ref)
    if decision.action == "already-merged":
        return Publication("no-change", decision.reason)

    _ensure_proposal(engine, product.id, evaluation_id, candidate, description)
    if isinstance(forge, LocalForge):
        forge.ensure_project(project, mirror)
    forge.ensure_branch(BranchPush(project, branch, candidate.commit, candidate.git_dir))
    params = MergeRequestParams(
        project=project,
        product_id=product.id,
        title=candidate.title,
        description=description,
        proposal_key=candidate.key,
        source_branch=branch,
        target_branch=product.branch,
        draft=False,  # only verified candidates get here
        labels=labels,
        assignees=owners,
        reviewers=owners,
    )
    held = decision.action == "create" and hold_back(
        engine,
        product,
        candidate.key,
        params,
        [change.why for change in candidate.changes],
        candidate.claimed_rules,
    )
    if held:  # over a rate limit: the branch is pushed, the merge request waits its turn
        return Publication("proposed", f"merge request deferred: {held}")
    state = forge.ensure_merge_request(params)
    _record(engine, product, candidate, state, description, branch)
    verb = "opened" if state.created else "updated"
    return Publication(
        "proposed", f"merge request {verb}: {state.url}", state.url, state.ref, state.created
    )


def _ensure_proposal(
    engine: Engine, product_id: str, evaluation_id: int, candidate: Candidate, description: str
) -> None:
    changes = {
        "dependencies": [
            {"package": c.package, "file": c.file, "from": c.current, "to": c.target, "why": c.why}
            for c in candidate.changes
        ],
        "amendment": candidate.amendment_id,
        "commit": candidate.commit,
    }
    try:
        with session_scope(engine) as session:
            exists = session.exec(
                select(Proposal.id).where(
                    Proposal.product_id == product_id, Proposal.key == candidate.key
                )
            ).first()
            if exists is None:
                session.add(
                    Proposal(
                        product_id=product_id,
                        evaluation_id=evaluation_id,
                        key=candidate.key,
                        title=candidate.title[:300],
                        description=description,
                        changes=changes,
                        state="proposed",
                    )
                )
    except IntegrityError:
        pass  # a concurrent delivery wrote the same proposal first: same content, same key


def _record(
    engine: Engine,
    product: Product,
    candidate: Candidate,
    state: MergeRequestState,
    description: str,
    branch: str,
) -> None:
    """Mirror the forge's merge request in the registry (the local forge's row already is it)
    and mark the proposals it replaces."""
    with session_scope(engine) as session:
        proposal = session.exec(
            select(Proposal).where(Proposal.product_id == product.id, Proposal.key == candidate.key)
        ).first()
        row = session.exec(
            select(MergeRequest).where(
                MergeRequest.product_id == product.id,
                MergeRequest.forge == state.forge,
                MergeRequest.forge_ref == state.ref,
            )
        ).first()
        if row is None:
            row = MergeRequest(
                product_id=product.id, forge=state.forge, forge_ref=state.ref, title=state.title
            )
        row.url = state.url
        row.title = state.title[:300]
        row.description = description
        row.state = state.state
        row.draft = state.draft
        row.labels = list(state.labels)
        row.head_commit = state.head_commit
        row.proposal_key = candidate.key
        row.branch = branch
        row.target_branch = product.branch
        row.proposal_id = proposal.id if proposal is not None else row.proposal_id
        row.updated_at = utcnow()
        session.add(row)
        if branch != EVERGREEN_BRANCH:
            return  # an amendment's merge request stands beside the weekly one
        superseded = session.exec(
            select(Proposal).where(
                Proposal.product_id == product.id,
                Proposal.state == "proposed",
                Proposal.key != candidate.key,
            )
        ).all()
        for old in superseded:
            old.state = "superseded"
            session.add(old)
