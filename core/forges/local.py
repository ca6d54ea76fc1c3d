"""The embedded forge: bare git repositories under ``$SPECFLEET_HOME/forge`` plus merge-request
rows in specfleet's own database, reviewed and merged from the CLI (and the web console).

A project is a bare repository named after it (the product id). A merge request is a
:class:`core.db.MergeRequest` row with ``forge="local"``; its reference is a number per
project and its URL ``specfleet://<project>/merge_requests/<n>`` names the project, so a
reference alone finds the row. Notes and every person's action are :class:`AuditEntry` rows.

Every ``ensure_*`` call holds a per-project file lock (two processes on this machine) and, on
PostgreSQL, a row lock on the product (two machines sharing the database), so a retried or
duplicated task never opens a second merge request.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.db import AuditEntry, MergeRequest, Product, Proposal, session_scope
from core.db.types import utcnow
from core.errors import (
    ForgeError,
    InputError,
    MergeRequestNotFound,
    MergeRequestRefused,
)
from core.forges.interface import (
    BranchPush,
    MergeRequestParams,
    MergeRequestState,
    MergeRequestStateName,
)
from core.git import GIT_ENV
from core.secrets import redact_text

PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
BRANCH_NAME = re.compile(r"^(?!.*\.\.)(?!/)(?!.*//)(?!.*@\{)[A-Za-z0-9_.\-/]{1,255}(?<![/.])$")
SYSTEM_ACTOR = "specfleet"
URL_PREFIX = "specfleet://"
MERGER_IDENTITY = {
    "GIT_AUTHOR_NAME": "specfleet",
    "GIT_AUTHOR_EMAIL": "specfleet@localhost",
    "GIT_COMMITTER_NAME": "specfleet",
    "GIT_COMMITTER_EMAIL": "specfleet@localhost",
}


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


class LocalForge:
    """Bare repositories under ``root`` and merge requests as database rows."""

    name = "local"

    def __init__(self, engine: Engine, root: Path, timeout_seconds: int = 120) -> None:
        self.engine = engine
        self.root = root
        self.timeout_seconds = timeout_seconds

    # -- repositories ------------------------------------------------------------------------

    def project_path(self, project: str) -> Path:
        """The bare repository of ``project`` (which may not exist yet)."""
        if not PROJECT_NAME.match(project):
            raise InputError(
                f"invalid local forge project name {project!r}: use letters, digits, '.', '_' "
                "and '-' (the product id)"
            )
        return self.root / f"{project}.git"

    def ensure_project(self, project: str, source: Path) -> str:
        """The project's bare repository, created from ``source``'s branches when absent.

        Returns the repository's path, usable as a product's ``repo_url``. An existing
        project is left as it is: the forge, not ``source``, is then the truth.
        """
        path = self.project_path(project)
        if not (source / ".git").exists() and not (source / "HEAD").exists():
            raise InputError(f"{source} is not a git repository")
        with self._locked(project):
            if (path / "HEAD").exists():
                return str(path.resolve())
            self.root.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            if partial.exists():
                shutil.rmtree(partial)
            self._git(None, "init", "--bare", "--quiet", str(partial))
            self._git(
                partial,
                "fetch",
                "--quiet",
                "--no-tags",
                str(source.resolve()),
                "+refs/heads/*:refs/heads/*",
            )
            head = self._source_head(source)
            if head:
                self._git(partial, "symbolic-ref", "HEAD", f"refs/heads/{head}")
            # a repository interrupted half-way must never look like a project
            partial.rename(path)
        return str(path.resolve())

    def ensure_branch(self, push: BranchPush) -> str:
        """Force ``push.branch`` to ``push.commit``, fetched from ``push.source``."""
        _check_branch(push.branch)
        path = self._existing(push.project)
        with self._locked(push.project):
            if self._tip(path, push.branch) == push.commit:
                return push.commit
            # pushing from the source sends exactly the missing objects, whatever refs it has;
            # --no-verify: a repository's own hooks never run on specfleet's machines
            self._git(
                push.source,
                "push",
                "--quiet",
                "--no-verify",
                "--force",
                str(path),
                f"{push.commit}:refs/heads/{push.branch}",
                in_work_tree=True,
            )
            tip = self._tip(path, push.branch)
        if tip != push.commit:
            raise ForgeError(f"{push.project}: {push.branch} is at {tip}, not {push.commit}")
        return tip

    # -- merge requests ----------------------------------------------------------------------

    def ensure_merge_request(self, params: MergeRequestParams) -> MergeRequestState:
        """The one open merge request from the source branch, created or updated in place."""
        _check_branch(params.source_branch)
        _check_branch(params.target_branch)
        path = self._existing(params.project)
        head = self._tip(path, params.source_branch)
        if head is None:
            raise ForgeError(
                f"{params.project}: no branch {params.source_branch!r}; push it before opening "
                "a merge request"
            )
        if self._tip(path, params.target_branch) is None:
            raise ForgeError(f"{params.project}: no target branch {params.target_branch!r}")
        with self._locked(params.project), session_scope(self.engine) as session:
            self._lock_product(session, params.product_id)
            row = self._open_row(session, params.project, params.source_branch)
            proposal = session.exec(
                select(Proposal).where(
                    Proposal.product_id == params.product_id, Proposal.key == params.proposal_key
                )
            ).first()
            desired: dict[str, Any] = {
                "title": params.title[:300],
                "description": params.description,
                "target_branch": params.target_branch,
                "draft": params.draft,
                "labels": list(params.labels),
                "proposal_key": params.proposal_key,
                "head_commit": head,
                "proposal_id": proposal.id if proposal is not None else None,
            }
            now = utcnow()
            if row is None:
                ref = str(self._next_number(session, params.project))
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
                self._audit(
                    session, SYSTEM_ACTOR, "mr.create", row, _people(params) | {"head": head}
                )
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
            self._audit(
                session,
                SYSTEM_ACTOR,
                "mr.update",
                row,
                _people(params) | {"changed": changed, "head": head},
            )
            return state_of(row, params.project)

    def ensure_note(self, project: str, ref: str, key: str, body: str) -> None:
        """A comment on the merge request, stored once per ``key``."""
        with self._locked(project), session_scope(self.engine) as session:
            row = self._row(session, project, ref)
            notes = session.exec(
                select(AuditEntry).where(
                    AuditEntry.action == "mr.note",
                    AuditEntry.subject_type == "merge_request",
                    AuditEntry.subject_id == str(row.id),
                )
            ).all()
            if any((note.detail or {}).get("key") == key for note in notes):
                return
            self._audit(session, SYSTEM_ACTOR, "mr.note", row, {"key": key, "body": body})

    def merge_request(self, project: str, ref: str) -> MergeRequestState:
        with session_scope(self.engine) as session:
            return state_of(self._row(session, project, ref), project)

    def open_merge_request(self, project: str, source_branch: str) -> MergeRequestState | None:
        with session_scope(self.engine) as session:
            row = self._open_row(session, project, source_branch)
            return state_of(row, project) if row is not None else None

    def notes(self, project: str, ref: str) -> list[AuditEntry]:
        """The merge request's notes, oldest first."""
        with session_scope(self.engine) as session:
            row = self._row(session, project, ref)
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

    # -- what people do (CLI, web) -----------------------------------------------------------

    def approve(self, merge_request_id: int, actor: str) -> MergeRequestState:
        """Record ``actor``'s approval of an open, non-draft merge request (once per person)."""
        with session_scope(self.engine) as session:
            row = self._by_id(session, merge_request_id)
            _refuse_unless_open(row, "approve")
            if row.draft:
                raise MergeRequestRefused(
                    f"merge request {row.id} is a draft (not verified yet); it cannot be approved"
                )
            if actor in row.approvals:
                return state_of(row)
            row.approvals = [*row.approvals, actor]
            row.updated_at = utcnow()
            session.add(row)
            self._audit(session, actor, "mr.approve", row, {"head": row.head_commit})
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
            row = self._by_id(session, merge_request_id)
            project = project_of(row)
            _refuse_unless_open(row, "merge")
            if row.draft:
                raise MergeRequestRefused(
                    f"merge request {row.id} is a draft (not verified yet); it cannot be merged"
                )
            if require_approval and not row.approvals:
                raise MergeRequestRefused(
                    f"merge request {row.id} has no approval; approve it first "
                    f"(specfleet mr approve {row.id})"
                )
            path = self._existing(project)
            with self._locked(project):
                head = self._tip(path, row.branch)
                if head is None or head != row.head_commit:
                    raise MergeRequestRefused(
                        f"merge request {row.id}: branch {row.branch} is at "
                        f"{(head or 'nothing')[:12]}, not the reviewed "
                        f"{(row.head_commit or '?')[:12]}; publish it again before merging"
                    )
                target = self._tip(path, row.target_branch)
                if target is None:
                    raise MergeRequestRefused(
                        f"merge request {row.id}: the target branch {row.target_branch} is gone"
                    )
                result, how = self._merge_commit(path, row, head, target, actor)
                if result != target:
                    self._git(
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
                self._set_proposal_state(session, row, "merged")
                self._audit(
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
            row = self._by_id(session, merge_request_id)
            _refuse_unless_open(row, "close")
            now = utcnow()
            row.state = "closed"
            row.closed_at = now
            row.updated_at = now
            session.add(row)
            self._set_proposal_state(session, row, "closed")
            self._audit(session, actor, "mr.close", row, {"head": row.head_commit})
            return state_of(row)

    def diff(self, merge_request_id: int, max_bytes: int = 2_000_000) -> str:
        """The merge request's changes: target...head in the bare repository (bounded)."""
        with session_scope(self.engine) as session:
            row = self._by_id(session, merge_request_id)
        path = self._existing(project_of(row))
        head = row.head_commit or self._tip(path, row.branch)
        if head is None:
            raise ForgeError(f"merge request {row.id}: its branch {row.branch} is gone")
        target = self._tip(path, row.target_branch)
        base = head + "^" if target is None else f"refs/heads/{row.target_branch}...{head}"
        text = self._git(path, "diff", "--no-color", "--no-ext-diff", base)
        return text[:max_bytes]

    def get(self, merge_request_id: int) -> MergeRequest:
        """The merge-request row (for views that show more than the protocol's value)."""
        with session_scope(self.engine) as session:
            return self._by_id(session, merge_request_id)

    # -- internals ---------------------------------------------------------------------------

    def _merge_commit(
        self, path: Path, row: MergeRequest, head: str, target: str, actor: str
    ) -> tuple[str, str]:
        if self._is_ancestor(path, head, target):
            return target, "already-contained"
        if self._is_ancestor(path, target, head):
            return head, "fast-forward"
        merged = self._run(path, "merge-tree", "--write-tree", "--name-only", target, head)
        if merged.returncode == 1:
            lines = merged.stdout.decode("utf-8", "replace").splitlines()[1:]
            conflicting = list(dict.fromkeys(_until_blank(lines)))[:5]
            raise MergeRequestRefused(
                f"merge request {row.id} conflicts with {row.target_branch}"
                + (f" in {', '.join(name for name in conflicting if name)}" if conflicting else "")
                + "; it is updated by the next proposal"
            )
        if merged.returncode != 0:
            raise ForgeError(f"cannot merge merge request {row.id}: {_stderr(merged)}")
        tree = merged.stdout.decode().splitlines()[0].strip()
        message = (
            f"Merge branch '{row.branch}' into {row.target_branch}\n\n"
            f"{row.title}\n\nMerge request {row.forge_ref}, approved by "
            f"{', '.join(row.approvals) or 'nobody'}, merged by {actor}.\n"
        )
        commit = self._git(
            path, "commit-tree", tree, "-p", target, "-p", head, "-m", message, env=MERGER_IDENTITY
        ).strip()
        return commit, "merge-commit"

    def _set_proposal_state(self, session: Session, row: MergeRequest, state: str) -> None:
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

    def _lock_product(self, session: Session, product_id: str) -> None:
        # FOR UPDATE serialises ensure calls for one product across machines on PostgreSQL;
        # SQLite ignores it and the file lock does the job there
        product = session.exec(
            select(Product).where(Product.id == product_id).with_for_update()
        ).first()
        if product is None:
            raise ForgeError(f"no product {product_id!r} is registered")

    def _open_row(self, session: Session, project: str, branch: str) -> MergeRequest | None:
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

    def _row(self, session: Session, project: str, ref: str) -> MergeRequest:
        row = session.exec(
            select(MergeRequest).where(
                MergeRequest.forge == "local", MergeRequest.url == merge_request_url(project, ref)
            )
        ).first()
        if row is None:
            raise MergeRequestNotFound(f"no merge request {ref} in local project {project}")
        return row

    def _by_id(self, session: Session, merge_request_id: int) -> MergeRequest:
        row = session.get(MergeRequest, merge_request_id)
        if row is None or row.forge != "local":
            raise MergeRequestNotFound(f"no merge request {merge_request_id} on the local forge")
        return row

    def _next_number(self, session: Session, project: str) -> int:
        refs = session.exec(
            select(MergeRequest.forge_ref).where(
                MergeRequest.forge == "local",
                col(MergeRequest.url).startswith(f"{URL_PREFIX}{project}/merge_requests/"),
            )
        ).all()
        numbers = [int(ref) for ref in refs if ref and ref.isdigit()]
        return max(numbers, default=0) + 1

    def _audit(
        self, session: Session, actor: str, action: str, row: MergeRequest, detail: dict[str, Any]
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

    def _existing(self, project: str) -> Path:
        path = self.project_path(project)
        if not (path / "HEAD").exists():
            raise ForgeError(f"no local forge project {project!r} (expected {path})")
        return path

    def _tip(self, path: Path, branch: str) -> str | None:
        result = self._run(
            path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"
        )
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _is_ancestor(self, path: Path, ancestor: str, descendant: str) -> bool:
        return self._run(path, "merge-base", "--is-ancestor", ancestor, descendant).returncode == 0

    def _source_head(self, source: Path) -> str | None:
        result = subprocess.run(
            ["git", "-C", str(source), "symbolic-ref", "--quiet", "--short", "HEAD"],
            capture_output=True,
            env={**os.environ, **GIT_ENV},
            timeout=self.timeout_seconds,
            check=False,
        )
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def _run(
        self,
        path: Path | None,
        *args: str,
        in_work_tree: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        if path is None:
            location: list[str] = []
        elif in_work_tree:
            location = ["-C", str(path)]
        else:
            location = ["--git-dir", str(path)]
        try:
            return subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", *location, *args],
                capture_output=True,
                env={**os.environ, **GIT_ENV, **(env or {})},
                timeout=self.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ForgeError(f"git {args[0]} timed out after {self.timeout_seconds} s") from error

    def _git(
        self,
        path: Path | None,
        *args: str,
        in_work_tree: bool = False,
        env: dict[str, str] | None = None,
    ) -> str:
        result = self._run(path, *args, in_work_tree=in_work_tree, env=env)
        if result.returncode != 0:
            raise ForgeError(f"git {args[0]} failed: {_stderr(result)}")
        return result.stdout.decode("utf-8", "replace")

    @contextlib.contextmanager
    def _locked(self, project: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.project_path(project).with_suffix(".lock")
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_PAST = {"approve": "approved", "merge": "merged", "close": "closed"}


def _refuse_unless_open(row: MergeRequest, action: str) -> None:
    if row.state != "open":
        raise MergeRequestRefused(
            f"merge request {row.id} is {row.state}; it cannot be {_PAST[action]}"
        )


def _until_blank(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if not line.strip():
            return
        yield line.strip()


def _check_branch(branch: str) -> None:
    if not BRANCH_NAME.match(branch) or branch.endswith(".lock"):
        raise InputError(f"invalid branch name {branch!r}")


def _people(params: MergeRequestParams) -> dict[str, Sequence[str]]:
    return {"assignees": list(params.assignees), "reviewers": list(params.reviewers)}


def _stderr(result: subprocess.CompletedProcess[bytes]) -> str:
    return redact_text(result.stderr.decode("utf-8", "replace").strip()[-500:])
