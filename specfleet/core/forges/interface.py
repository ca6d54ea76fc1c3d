"""The forge seam: one small protocol of idempotent ``ensure_*`` operations.

Every operation can be repeated with the same parameters and leaves the forge in the same
state: a retried Celery task, a redelivered message or a second worker never creates a second
branch, merge request or note. Parameter objects are frozen so a call can be logged and
retried as a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

EVERGREEN_BRANCH = "specfleet/evergreen"

MergeRequestStateName = Literal["open", "merged", "closed"]


@dataclass(frozen=True)
class BranchPush:
    """Make ``branch`` of ``project`` point at ``commit``, taken from the local repository
    ``source`` (a worktree or repository holding that commit). Force-updates the branch: the
    evergreen branch is specfleet's own and is rewritten by each newer proposal."""

    project: str
    branch: str
    commit: str
    source: Path


@dataclass(frozen=True)
class MergeRequestParams:
    """What one merge request should look like; ``ensure_merge_request`` makes it so."""

    project: str
    product_id: str
    title: str
    description: str
    proposal_key: str
    source_branch: str = EVERGREEN_BRANCH
    target_branch: str = "main"
    draft: bool = False
    labels: tuple[str, ...] = ("specfleet",)
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeRequestState:
    """A merge request as the forge reports it."""

    forge: str
    project: str
    ref: str
    url: str
    state: MergeRequestStateName
    title: str
    draft: bool
    head_commit: str | None
    proposal_key: str | None
    approvals: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    created: bool = field(default=False, compare=False)
    """True only when this call created the merge request (for logs and tests)."""


class Forge(Protocol):
    """A place that hosts product repositories and their merge requests."""

    name: str

    def ensure_branch(self, push: BranchPush) -> str:
        """Point the branch at the commit (pushing it if needed); returns the branch's commit."""
        ...

    def ensure_merge_request(self, params: MergeRequestParams) -> MergeRequestState:
        """The one open merge request from ``params.source_branch``, created or updated in place."""
        ...

    def ensure_note(self, project: str, ref: str, key: str, body: str) -> None:
        """A comment on the merge request, added once per ``key``."""
        ...

    def merge_request(self, project: str, ref: str) -> MergeRequestState:
        """The merge request's current state (raises ``MergeRequestNotFound``)."""
        ...

    def open_merge_request(self, project: str, source_branch: str) -> MergeRequestState | None:
        """The open merge request from that branch, if any."""
        ...
