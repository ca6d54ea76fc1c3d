"""The embedded forge's merge requests as database rows: their URLs, lookups, numbering,
the protocol value they turn into, and the audit entries every action writes.

A merge request's URL ``specfleet://<project>/merge_requests/<n>`` names its project, so a
reference alone finds the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from specfleet.core.db import AuditEntry, MergeRequest, Product, Proposal
from specfleet.core.errors import ForgeError, MergeRequestNotFound, MergeRequestRefused
from specfleet.core.forges.interface import (
    MergeRequestParams,
    MergeRequestState,
    MergeRequestStateName,
)

SYSTEM_ACTOR = "specfleet"
URL_PREFIX = "specfleet://"
_PAST = {"approve": "approved", "merge": "merged", "close": "closed"}


def merge_request_url(project: str, ref: str) -> str:
    return f"{URL_PREFIX}{project}/merge_requests/{ref}"


def project_of(row: MergeRequest) -> str:
    """The project a local merge-request row belongs to, read back from its URL."""
    url = row.url or ""
    if url.startswith(URL_PREFIX) and "/merge_requests/" in url:
        return url[len(URL_PREFIX) :].split("/merge_requests/", 1)[0]
    return row.product_id


def state_of(
    row: MergeRequest, project: str | None = None, created: bool = False
) -> MergeRequestState:
    """A merge-request row as the forge protocol's value."""
    state: MergeRequestStateName = (
        "merged" if row.state == "merged" else "closed" if row.state == "closed" else "open"
    )
    return MergeRequestState(
        forge="local",
        project=project or project_of(row),
        ref=row.forge_ref or str(row.id),
        url=row.url or "",
        state=state,
        title=row.title,
        draft=row.draft,
        head_commit=row.head_commit,
        proposal_key=row.proposal_key,
        approvals=tuple(row.approvals),
        labels=tuple(row.labels),
        created=created,
    )


def refuse_unless_open(row: MergeRequest, action: str) -> None:
    if row.state != "open":
        raise MergeRequestRefused(
            f"merge request {row.id} is {row.state}; it cannot be {_PAST[action]}"
        )


def people(params: MergeRequestParams) -> dict[str, Sequence[str]]:
    return {"assignees": list(params.assignees), "reviewers": list(params.reviewers)}


def lock_product(session: Session, product_id: str) -> None:
    # FOR UPDATE serialises ensure calls for one product across machines on PostgreSQL;
    # SQLite ignores it and the file lock does the job there
    product = session.exec(
        select(Product).where(Product.id == product_id).with_for_update()
    ).first()
    if product is None:
        raise ForgeError(f"no product {product_id!r} is registered")


def proposal_id(session: Session, product_id: str, key: str) -> int | None:
    proposal = session.exec(
        select(Proposal).where(Proposal.product_id == product_id, Proposal.key == key)
    ).first()
    return proposal.id if proposal is not None else None


def set_proposal_state(session: Session, row: MergeRequest, state: str) -> None:
    if not row.proposal_key:
        return
    proposal = session.exec(
        select(Proposal).where(
            Proposal.product_id == row.product_id, Proposal.key == row.proposal_key
        )
    ).first()
    if proposal is not None:
        proposal.state = state
        session.add(proposal)


def open_row(session: Session, project: str, branch: str) -> MergeRequest | None:
    return session.exec(
        select(MergeRequest)
        .where(
            MergeRequest.forge == "local",
            MergeRequest.state == "open",
            MergeRequest.branch == branch,
            col(MergeRequest.url).startswith(f"{URL_PREFIX}{project}/merge_requests/"),
        )
        .order_by(col(MergeRequest.id).desc())
    ).first()


def row_by_ref(session: Session, project: str, ref: str) -> MergeRequest:
    row = session.exec(
        select(MergeRequest).where(
            MergeRequest.forge == "local", MergeRequest.url == merge_request_url(project, ref)
        )
    ).first()
    if row is None:
        raise MergeRequestNotFound(f"no merge request {ref} in local project {project}")
    return row


def row_by_id(session: Session, merge_request_id: int) -> MergeRequest:
    row = session.get(MergeRequest, merge_request_id)
    if row is None or row.forge != "local":
        raise MergeRequestNotFound(f"no merge request {merge_request_id} on the local forge")
    return row


def next_number(session: Session, project: str) -> int:
    refs = session.exec(
        select(MergeRequest.forge_ref).where(
            MergeRequest.forge == "local",
            col(MergeRequest.url).startswith(f"{URL_PREFIX}{project}/merge_requests/"),
        )
    ).all()
    numbers = [int(ref) for ref in refs if ref and ref.isdigit()]
    return max(numbers, default=0) + 1


def notes_of(session: Session, row: MergeRequest) -> list[AuditEntry]:
    """The merge request's notes, oldest first."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(
                AuditEntry.action == "mr.note",
                AuditEntry.subject_type == "merge_request",
                AuditEntry.subject_id == str(row.id),
            )
            .order_by(col(AuditEntry.id))
        ).all()
    )


def audit(
    session: Session, actor: str, action: str, row: MergeRequest, detail: dict[str, Any]
) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            subject_type="merge_request",
            subject_id=str(row.id),
            detail={"product": row.product_id, "ref": row.forge_ref, **detail},
        )
    )
