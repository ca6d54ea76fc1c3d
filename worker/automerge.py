"""Automerge: an owner's opt-in, bounded by the policy set, audited, announced and revertible.

An owner opts a product in with ``automerge:`` in its spec or in the registry (``security-patch``
| ``deterministic`` | ``never``; the registry's value wins when set). The policy set caps it
(``fleet.yaml``: ``automerge.max_level``, default ``security-patch``). An open merge request of
the local forge is merged by specfleet only when every condition of :func:`decide_automerge`
holds: the grace period has passed since it last changed, it is verified green, the contract
and the data on the fixtures are identical, no LLM wrote any of it and every change is within
the effective level. Each merge is in the audit log (the forge's ``mr.merge`` by
``specfleet-automerge``) and in ``automerge_record``, which the weekly digest
(``specfleet.core.notify``) reads and marks announced once each owner's digest went out;
:func:`open_revert` opens a merge request reverting any merged one.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import AutomergeRecord, MergeRequest, Product, Proposal, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import MergeRequestRefused, SpecfleetError
from specfleet.core.forges.interface import BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.core.forges.local_rows import project_of
from specfleet.core.forges.rate_limits import ADVISORY_ID
from specfleet.core.notify.announced import mark_announced
from specfleet.core.notify.gather import unannounced_automerges
from specfleet.core.spec.loader import check_spec_bytes
from specfleet.worker.pipeline.deferral import latest_fleet_rules
from specfleet.worker.review import ReviewFacts, is_patch_bump, review_facts

LEVELS = ("never", "security-patch", "deterministic")  # each allows what the previous does
DEFAULT_CAP = "security-patch"
ACTOR = "specfleet-automerge"


@dataclass(frozen=True)
class AutomergeDecision:
    merge: bool
    level: str  # the effective level
    reasons: tuple[str, ...]  # why it may (all conditions) or why not (the failed ones)


def effective_level(opted: str | None, cap: str | None) -> str:
    """The lower of the owner's opt-in and the policy set's cap."""
    chosen = opted if opted in LEVELS else "never"
    ceiling = cap if cap in LEVELS else DEFAULT_CAP
    return LEVELS[min(LEVELS.index(chosen), LEVELS.index(ceiling))]


def decide_automerge(
    level: str,
    facts: ReviewFacts,
    changed_files: Sequence[str],
    spec_path: str,
    waited: dt.timedelta,
    grace: dt.timedelta,
) -> AutomergeDecision:
    """Whether a merge request may be merged without a click (pure)."""
    if level == "never":
        return AutomergeDecision(False, level, ("the product is not opted in to automerge",))
    failed: list[str] = []
    if waited < grace:
        failed.append(f"in its grace period ({_hours(waited)} of {_hours(grace)} h)")
    if not facts.green:
        failed.append(f"not verified green ({facts.verdict})")
    if not facts.identical_outputs:
        failed.append(f"outputs not identical (contract {facts.contract}, data {facts.data})")
    failed += _outside_level(level, facts, changed_files, spec_path)
    if failed:
        return AutomergeDecision(False, level, tuple(failed))
    return AutomergeDecision(
        True,
        level,
        (
            f"opted in at {level}",
            "verified green",
            "contract and data identical",
            f"every change within {level}",
            f"grace period of {_hours(grace)} h passed",
        ),
    )


def _outside_level(
    level: str, facts: ReviewFacts, changed_files: Sequence[str], spec_path: str
) -> list[str]:
    failed: list[str] = []
    if not facts.deterministic:
        failed.append("an LLM wrote part of it (only deterministic changes are automerged)")
    if not facts.dependency_changes:
        failed.append("no recorded dependency change")
    stray = sorted(set(changed_files) - {spec_path} - set(facts.dependency_files))
    if stray:
        failed.append(
            "it changes files beyond the dependency pins and the spec: " + ", ".join(stray[:5])
        )
    if level == "security-patch":
        for package, old, new, why in facts.dependency_changes:
            if not is_patch_bump(old, new):
                failed.append(f"{package} {old} -> {new} is not a patch-level upgrade")
            if not any(ADVISORY_ID.match(part.strip()) for part in why.split(";")):
                failed.append(f"{package} {old} -> {new} fixes no advisory")
    return failed


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}".rstrip("0").rstrip(".")


# -- I/O: the beat task's pass over open merge requests -------------------------------------


@dataclass(frozen=True)
class AutomergeOutcome:
    merge_request_id: int
    product_id: str
    merged: bool
    reasons: tuple[str, ...]


def run_automerge(
    engine: Engine, forge: LocalForge, grace: dt.timedelta, now: dt.datetime | None = None
) -> list[AutomergeOutcome]:
    """Merge every open local merge request the decision allows; say why for each opted-in one."""
    now = now or utcnow()
    cap = (latest_fleet_rules(engine).get("automerge") or {}).get("max_level")
    with Session(engine) as session:
        rows = session.exec(
            select(MergeRequest, Product)
            .join(Product, col(Product.id) == col(MergeRequest.product_id))
            .where(MergeRequest.state == "open", MergeRequest.forge == "local")
            .order_by(col(MergeRequest.id))
        ).all()
        changes = {
            (pid, key): dict(c or {})
            for pid, key, c in session.exec(
                select(Proposal.product_id, Proposal.key, Proposal.changes)
            ).all()
        }
    outcomes = []
    for row, product in rows:
        if row.draft or row.id is None:
            continue
        opted = product.automerge or _spec_opt_in(forge, row, product.spec_path)
        level = effective_level(opted, cap)
        if level == "never":
            continue
        facts = review_facts(
            row.description,
            changes.get((row.product_id, row.proposal_key or "")),
            row.labels,
        )
        decision = decide_automerge(
            level, facts, _changed_files(forge, row), product.spec_path, now - row.updated_at, grace
        )
        merged = decision.merge and _merge(engine, forge, row, decision)
        outcomes.append(AutomergeOutcome(row.id, row.product_id, merged, decision.reasons))
    return outcomes


def _merge(
    engine: Engine, forge: LocalForge, row: MergeRequest, decision: AutomergeDecision
) -> bool:
    assert row.id is not None
    base = _git(forge, row, "rev-parse", f"refs/heads/{row.target_branch}").strip()
    try:
        state = forge.merge(row.id, ACTOR, require_approval=False)
    except MergeRequestRefused:
        return False  # moved or conflicting since it was read: a human looks at it
    merged_commit = _git(forge, row, "rev-parse", f"refs/heads/{row.target_branch}").strip()
    with session_scope(engine) as session:
        session.add(
            AutomergeRecord(
                product_id=row.product_id,
                merge_request_id=row.id,
                proposal_key=row.proposal_key,
                level=decision.level,
                title=row.title[:300],
                merged_commit=merged_commit or state.head_commit,
                base_commit=base or None,
                reasons=list(decision.reasons),
            )
        )
    return True


def _spec_opt_in(forge: LocalForge, row: MergeRequest, spec_path: str) -> str | None:
    """The ``automerge:`` of the spec on the merge request's target branch (owners opt in on
    their default branch, not in the proposal under review)."""
    try:
        data = _git(forge, row, "show", f"refs/heads/{row.target_branch}:{spec_path}")
    except SpecfleetError:
        return None
    checked = check_spec_bytes(data.encode(), spec_path)
    return checked.spec.automerge if checked.spec is not None else None


def _changed_files(forge: LocalForge, row: MergeRequest) -> list[str]:
    if not row.head_commit:
        return []
    out = _git(
        forge, row, "diff", "--name-only", f"refs/heads/{row.target_branch}...{row.head_commit}"
    )
    return [line for line in out.splitlines() if line]


def _git(forge: LocalForge, row: MergeRequest, *args: str) -> str:
    path = forge.project_path(project_of(row))
    result = subprocess.run(
        ["git", "--git-dir", str(path), *args],
        capture_output=True,
        text=True,
        timeout=forge.timeout_seconds,
        check=False,
    )
    if result.returncode != 0:
        raise MergeRequestRefused(f"git {args[0]} failed: {result.stderr.strip()[:300]}")
    return result.stdout


# -- revert --------------------------------------------------------------------------------


def open_revert(engine: Engine, forge: LocalForge, merge_request_id: int, actor: str) -> int:
    """A merge request reverting merged merge request ``merge_request_id``; returns its id."""
    with Session(engine) as session:
        row = session.get(MergeRequest, merge_request_id)
        if row is None:
            raise MergeRequestRefused(f"no merge request {merge_request_id}")
        record = session.exec(
            select(AutomergeRecord).where(AutomergeRecord.merge_request_id == merge_request_id)
        ).first()
    if row.forge != "local" or row.state != "merged":
        raise MergeRequestRefused(
            f"merge request {merge_request_id} is {row.state} on {row.forge}; only merged "
            "merge requests of the local forge are reverted here"
        )
    project = project_of(row)
    branch = f"specfleet/revert-{merge_request_id}"
    with tempfile.TemporaryDirectory(prefix="specfleet-revert-") as scratch:
        work = Path(scratch) / "work"
        _run(
            [
                "git",
                "clone",
                "--quiet",
                "--branch",
                row.target_branch,
                str(forge.project_path(project)),
                str(work),
            ]
        )
        _run(["git", "-C", str(work), "config", "user.name", actor])
        _run(["git", "-C", str(work), "config", "user.email", "specfleet@localhost"])
        _revert(work, row, record)
        commit = _run(["git", "-C", str(work), "rev-parse", "HEAD"]).strip()
        forge.ensure_branch(BranchPush(project, branch, commit, work))
        state = forge.ensure_merge_request(
            MergeRequestParams(
                project=project,
                product_id=row.product_id,
                title=f"Revert !{merge_request_id}: {row.title}"[:300],
                description=(
                    f"Reverts merge request !{merge_request_id} ({row.title}), "
                    f"requested by {actor}.\n\nMerging this restores `{row.target_branch}` "
                    "as it was before that merge; later changes are kept."
                ),
                proposal_key=f"revert-{merge_request_id}",
                source_branch=branch,
                target_branch=row.target_branch,
                labels=("specfleet", "revert"),
            )
        )
    with session_scope(engine) as session:
        opened = session.exec(
            select(MergeRequest).where(
                MergeRequest.forge == "local",
                MergeRequest.forge_ref == state.ref,
                MergeRequest.product_id == row.product_id,
            )
        ).one()
        if record is not None:
            stored = session.get(AutomergeRecord, record.id)
            if stored is not None:
                stored.revert_merge_request_id = opened.id
                session.add(stored)
        return opened.id or 0


def _revert(work: Path, row: MergeRequest, record: AutomergeRecord | None) -> None:
    merged = record.merged_commit if record is not None and record.merged_commit else None
    base = record.base_commit if record is not None else None
    if merged is None:
        merged = _merge_commit_of(work, row)
    parents = _run(["git", "-C", str(work), "rev-list", "--parents", "-n", "1", merged]).split()
    if len(parents) > 2:  # a merge commit: revert against its first parent
        _run(["git", "-C", str(work), "revert", "--no-edit", "-m", "1", merged])
        return
    span = f"{base}..{merged}" if base else f"{merged}^..{merged}"
    _run(["git", "-C", str(work), "revert", "--no-edit", span])


def _merge_commit_of(work: Path, row: MergeRequest) -> str:
    if not row.head_commit:
        raise MergeRequestRefused(f"merge request {row.id} has no recorded head commit")
    return row.head_commit


def _run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise MergeRequestRefused(f"{' '.join(args[:4])} failed: {result.stderr.strip()[:300]}")
    return result.stdout


# -- the digest's hook: core.notify reads and marks the records (re-exported for callers) ----

__all__ = [
    "AutomergeDecision",
    "AutomergeOutcome",
    "decide_automerge",
    "effective_level",
    "mark_announced",
    "open_revert",
    "run_automerge",
    "unannounced_automerges",
]
