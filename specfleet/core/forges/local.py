"""The embedded forge: bare git repositories under ``$SPECFLEET_HOME/forge`` plus merge-request
rows in specfleet's own database, reviewed and merged from the CLI (and the web console).

A project is a bare repository named after it (the product id). A merge request is a
:class:`specfleet.core.db.MergeRequest` row with ``forge="local"``; its reference is a number per
project and its URL ``specfleet://<project>/merge_requests/<n>`` names the project, so a
reference alone finds the row. Notes and every person's action are :class:`AuditEntry` rows.

Every ``ensure_*`` call holds a per-project file lock (two processes on this machine) and, on
PostgreSQL, a row lock on the product (two machines sharing the database), so a retried or
duplicated task never opens a second merge request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from specfleet.core.db import AuditEntry, MergeRequest, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import ForgeError, MergeRequestRefused
from specfleet.core.forges.interface import BranchPush, MergeRequestParams, MergeRequestState
from specfleet.core.forges.local_git import BareRepositories, check_branch
from specfleet.core.forges.local_rows import (
    SYSTEM_ACTOR,
    audit,
    lock_product,
    merge_request_url,
    next_number,
    notes_of,
    open_row,
    people,
    project_of,
    proposal_id,
    refuse_unless_open,
    row_by_id,
    row_by_ref,
    set_proposal_state,
    state_of,
)


class LocalForge:
    """Bare repositories under ``root`` and merge requests as database rows."""

    name = "local"

    def __init__(self, engine: Engine, root: Path, timeout_seconds: int = 120) -> None:
        self.engine = engine
        self.root = root
        self.timeout_seconds = timeout_seconds
        self.repos = BareRepositories(root, timeout_seconds)

    # -- repositories ------------------------------------------------------------------------

    def project_path(self, project: str) -> Path:
        """The bare repository of ``project`` (which may not exist yet)."""
        return self.repos.path(project)

    def ensure_project(self, project: str, source: Path) -> str:
        """The project's bare repository, created from ``source``'s branches when absent.

        Returns the repository's path, usable as a product's ``repo_url``. An existing
        project is left as it is: the forge, not ``source``, is then the truth.
        """
        return self.repos.create(project, source)

    def ensure_branch(self, push: BranchPush) -> str:
        """Force ``push.branch`` to ``push.commit``, fetched from ``push.source``."""
        return self.repos.push(push)

    # -- merge requests ----------------------------------------------------------------------

    def ensure_merge_request(self, params: MergeRequestParams) -> MergeRequestState:
        """The one open merge request from the source branch, created or updated in place."""
        check_branch(params.source_branch)
        check_branch(params.target_branch)
        path = self.repos.existing(params.project)
        head = self.repos.tip(path, params.source_branch)
        if head is None:
            raise ForgeError(
                f"{params.project}: no branch {params.source_branch!r}; push it before opening "
                "a merge request"
            )
        if self.repos.tip(path, params.target_branch) is None:
            raise ForgeError(f"{params.project}: no target branch {params.target_branch!r}")
        with self.repos.locked(params.project), session_scope(self.engine) as session:
            lock_product(session, params.product_id)
            row = open_row(session, params.project, params.source_branch)
            desired: dict[str, Any] = {
                "title": params.title[:300],
                "description": params.description,
                "target_branch": params.target_branch,
                "draft": params.draft,
                "labels": list(params.labels),
                "proposal_key": params.proposal_key,
                "head_commit": head,
                "proposal_id": proposal_id(session, params.product_id, params.proposal_key),
            }
            now = utcnow()
            if row is None:
                ref = str(next_number(session, params.project))
                row = MergeRequest(
                    product_id=params.product_id,
                    forge="local",
                    forge_ref=ref,
                    url=merge_request_url(params.project, ref),
                    branch=params.source_branch,
                    state="open",
                    approvals=[],
                    created_at=now,
                    updated_at=now,
                    **desired,
                )
                session.add(row)
                session.flush()
                audit(session, SYSTEM_ACTOR, "mr.create", row, people(params) | {"head": head})
                return state_of(row, params.project, created=True)
            changed = [name for name, value in desired.items() if getattr(row, name) != value]
            if not changed:
                return state_of(row, params.project)
            if row.head_commit != head and row.approvals:
                # an approval was given to the code it saw; new code needs a new look
                row.approvals = []
                changed.append("approvals")
            for name, value in desired.items():
                setattr(row, name, value)
            row.updated_at = now
            session.add(row)
            audit(
                session,
                SYSTEM_ACTOR,
                "mr.update",
                row,
                people(params) | {"changed": changed, "head": head},
            )
            return state_of(row, params.project)

    def ensure_note(self, project: str, ref: str, key: str, body: str) -> None:
        """A comment on the merge request, stored once per ``key``."""
        with self.repos.locked(project), session_scope(self.engine) as session:
            row = row_by_ref(session, project, ref)
            notes = notes_of(session, row)
            if any((note.detail or {}).get("key") == key for note in notes):
                return
            audit(session, SYSTEM_ACTOR, "mr.note", row, {"key": key, "body": body})

    def merge_request(self, project: str, ref: str) -> MergeRequestState:
        with session_scope(self.engine) as session:
            return state_of(row_by_ref(session, project, ref), project)

    def open_merge_request(self, project: str, source_branch: str) -> MergeRequestState | None:
        with session_scope(self.engine) as session:
            row = open_row(session, project, source_branch)
            return state_of(row, project) if row is not None else None

    def notes(self, project: str, ref: str) -> list[AuditEntry]:
        """The merge request's notes, oldest first."""
        with session_scope(self.engine) as session:
            return notes_of(session, row_by_ref(session, project, ref))

    # -- what people do (CLI, web) -----------------------------------------------------------

    def approve(self, merge_request_id: int, actor: str) -> MergeRequestState:
        """Record ``actor``'s approval of an open, non-draft merge request (once per person)."""
        with session_scope(self.engine) as session:
            row = row_by_id(session, merge_request_id)
            refuse_unless_open(row, "approve")
            if row.draft:
                raise MergeRequestRefused(
                    f"merge request {row.id} is a draft (not verified yet); it cannot be approved"
                )
            if actor in row.approvals:
                return state_of(row)
            row.approvals = [*row.approvals, actor]
            row.updated_at = utcnow()
            session.add(row)
            audit(session, actor, "mr.approve", row, {"head": row.head_commit})
            return state_of(row)

    def merge(
        self, merge_request_id: int, actor: str, require_approval: bool = True
    ) -> MergeRequestState:
        """Merge the reviewed head into the target branch of the bare repository.

        Fast-forwards when the target has not moved, otherwise writes a merge commit; refuses
        a draft, an unapproved merge request, a source branch that moved since it was last
        published, and a target that now conflicts. The proposal becomes ``merged``.
        """
        with session_scope(self.engine) as session:
            row = row_by_id(session, merge_request_id)
            project = project_of(row)
            refuse_unless_open(row, "merge")
            if row.draft:
                raise MergeRequestRefused(
                    f"merge request {row.id} is a draft (not verified yet); it cannot be merged"
                )
            if require_approval and not row.approvals:
                raise MergeRequestRefused(
                    f"merge request {row.id} has no approval; approve it first "
                    f"(specfleet mr approve {row.id})"
                )
            path = self.repos.existing(project)
            with self.repos.locked(project):
                head = self.repos.tip(path, row.branch)
                if head is None or head != row.head_commit:
                    raise MergeRequestRefused(
                        f"merge request {row.id}: branch {row.branch} is at "
                        f"{(head or 'nothing')[:12]}, not the reviewed "
                        f"{(row.head_commit or '?')[:12]}; publish it again before merging"
                    )
                target = self.repos.tip(path, row.target_branch)
                if target is None:
                    raise MergeRequestRefused(
                        f"merge request {row.id}: the target branch {row.target_branch} is gone"
                    )
                result, how = self.repos.merge_commit(path, row, head, target, actor)
                if result != target:
                    self.repos.git(
                        path,
                        "update-ref",
                        "-m",
                        f"specfleet: merge request {row.forge_ref} merged by {actor}",
                        f"refs/heads/{row.target_branch}",
                        result,
                        target,  # only if the target is still where we looked
                    )
                now = utcnow()
                row.state = "merged"
                row.merged_at = now
                row.updated_at = now
                session.add(row)
                set_proposal_state(session, row, "merged")
                audit(
                    session,
                    actor,
                    "mr.merge",
                    row,
                    {"commit": result, "head": head, "target": row.target_branch, "how": how},
                )
            return state_of(row, project)

    def close(self, merge_request_id: int, actor: str) -> MergeRequestState:
        """Close without merging; the proposal becomes ``closed`` and is not proposed again."""
        with session_scope(self.engine) as session:
            row = row_by_id(session, merge_request_id)
            refuse_unless_open(row, "close")
            now = utcnow()
            row.state = "closed"
            row.closed_at = now
            row.updated_at = now
            session.add(row)
            set_proposal_state(session, row, "closed")
            audit(session, actor, "mr.close", row, {"head": row.head_commit})
            return state_of(row)

    def diff(self, merge_request_id: int, max_bytes: int = 2_000_000) -> str:
        """The merge request's changes: target...head in the bare repository (bounded)."""
        with session_scope(self.engine) as session:
            row = row_by_id(session, merge_request_id)
        path = self.repos.existing(project_of(row))
        head = row.head_commit or self.repos.tip(path, row.branch)
        if head is None:
            raise ForgeError(f"merge request {row.id}: its branch {row.branch} is gone")
        target = self.repos.tip(path, row.target_branch)
        base = head + "^" if target is None else f"refs/heads/{row.target_branch}...{head}"
        text = self.repos.git(path, "diff", "--no-color", "--no-ext-diff", base)
        return text[:max_bytes]

    def get(self, merge_request_id: int) -> MergeRequest:
        """The merge-request row (for views that show more than the protocol's value)."""
        with session_scope(self.engine) as session:
            return row_by_id(session, merge_request_id)
