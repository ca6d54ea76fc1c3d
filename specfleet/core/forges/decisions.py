"""What to do with a new proposal given the product's merge-request history: a pure decision.

DESIGN.md section 7: one open merge request per product, updated in place by a newer
proposal; a proposal a product owner closed without merging is not proposed again until its
inputs (and therefore its key) change; a merged one is the new baseline. The pipeline loads
the product's rows, turns them into the records below and asks :func:`decide_publication`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from specfleet.core.db import MergeRequest, Proposal

PublicationAction = Literal["create", "update", "unchanged", "suppressed", "already-merged"]


@dataclass(frozen=True)
class MergeRequestRecord:
    """One of the product's merge requests as far as the decision needs it."""

    ref: str
    state: str  # open, merged or closed
    proposal_key: str | None

    @classmethod
    def from_row(cls, row: MergeRequest) -> MergeRequestRecord:
        return cls(ref=row.forge_ref or str(row.id), state=row.state, proposal_key=row.proposal_key)


@dataclass(frozen=True)
class ProposalRecord:
    """One of the product's earlier proposals: its content key and how it ended."""

    key: str
    state: str  # proposed, merged, closed, or anything the pipeline records

    @classmethod
    def from_row(cls, row: Proposal) -> ProposalRecord:
        return cls(key=row.key, state=row.state)


@dataclass(frozen=True)
class PublicationDecision:
    """What to do with the proposal, why, and which open merge request it concerns."""

    action: PublicationAction
    reason: str
    merge_request_ref: str | None = None

    @property
    def publishes(self) -> bool:
        """True when the forge has to be touched (a new merge request or an update)."""
        return self.action in ("create", "update")


def decide_publication(
    key: str,
    merge_requests: Iterable[MergeRequestRecord],
    proposals: Iterable[ProposalRecord] = (),
) -> PublicationDecision:
    """Decide whether the proposal ``key`` opens, updates or leaves alone a merge request."""
    requests = list(merge_requests)
    history = list(proposals)
    open_requests = [request for request in requests if request.state == "open"]
    for request in open_requests:
        if request.proposal_key == key:
            return PublicationDecision(
                "unchanged", "the open merge request already carries this proposal", request.ref
            )
    # A merge outranks a close: once a change is on the default branch it is the baseline,
    # whatever happened to an earlier merge request with the same content.
    if any(r.proposal_key == key and r.state == "merged" for r in requests) or any(
        p.key == key and p.state == "merged" for p in history
    ):
        return PublicationDecision("already-merged", "this proposal was merged before")
    closed = [r for r in requests if r.proposal_key == key and r.state == "closed"]
    if closed or any(p.key == key and p.state == "closed" for p in history):
        ref = closed[-1].ref if closed else None
        return PublicationDecision(
            "suppressed",
            "a product owner closed this proposal without merging; it is not proposed again "
            "until its inputs change",
            ref,
        )
    if open_requests:
        # several open ones only happen with rows written by hand; the newest one is updated
        current = open_requests[-1]
        return PublicationDecision(
            "update", "a newer proposal replaces the open merge request's", current.ref
        )
    return PublicationDecision("create", "no merge request is open for this product")
