"""Stage 6, apply: the candidate as a real commit on top of the baseline tip.

The candidate worktree is a copy of the baseline export with the plan's edits and one
amendment appended to the spec (the history of why stays whole; requirements are never
rewritten). It is committed in a throwaway repository that borrows the mirror's objects
(``objects/info/alternates``), so nothing is written into the mirror or the product's own
repository, and the commit can be pushed to the forge from there.

The proposal key is derived from content: the tree of the candidate's code (before the
amendment, whose date is the window's) plus the baseline commit, so the same change on the
same baseline always has the same key, and a closed one is recognised when proposed again.
The commit's dates are the window's start, so a retried evaluation re-creates the same commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specfleet.agent.remediators.dependencies import Upgrade, apply_proposal
from specfleet.core.errors import InputError, RepositoryError
from specfleet.core.git import GIT_ENV
from specfleet.core.health.pins import pin_differences, read_pins
from specfleet.core.secrets import redact_text
from specfleet.core.spec import Spec, check_spec_bytes
from specfleet.core.spec.amendment_text import append_amendment
from specfleet.worker.pipeline.assess import Assessment
from specfleet.worker.pipeline.plan import Plan

MAX_WHY = 1200
IDENTITY = {"name": "specfleet", "email": "specfleet@localhost"}


@dataclass(frozen=True)
class DependencyChange:
    package: str
    file: str
    current: str
    target: str
    why: str


@dataclass(frozen=True)
class Candidate:
    worktree: Path
    git_dir: Path  # a repository holding ``commit`` (push source)
    commit: str
    key: str
    title: str
    amendment_id: str
    amendment_text: str  # the YAML appended to the spec
    changes: tuple[DependencyChange, ...]
    claimed_rules: tuple[str, ...]  # rule ids the change says it resolves
    # set when the LLM planner made the change: its summary and per-file reasons
    plan_summary: str = ""
    rationale: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # every pin the change moved, lock-only ones too: (package, from, to, direct, file)
    pin_changes: tuple[tuple[str, str, str, bool, str], ...] = ()


def dependency_changes(upgrades: tuple[Upgrade, ...]) -> tuple[DependencyChange, ...]:
    return tuple(
        DependencyChange(
            upgrade.package,
            upgrade.file,
            upgrade.current,
            upgrade.target,
            "; ".join(reason.render() for reason in upgrade.reasons),
        )
        for upgrade in upgrades
    )


def amendment_item(
    spec: Spec, changes: tuple[DependencyChange, ...], policy_version: int | None, day: dt.date
) -> dict[str, Any]:
    """The amendment recording a dependency change: what was asked, what changed, why."""
    moved = ", ".join(f"{c.package} {c.current} → {c.target}" for c in changes)
    files = ", ".join(sorted({c.file for c in changes}))
    policy = f" (policy set v{policy_version})" if policy_version else ""
    reasons = "; ".join(dict.fromkeys(c.why for c in changes))
    if len(reasons) > MAX_WHY:
        reasons = reasons[: MAX_WHY - 1] + "…"
    return {
        "id": spec.next_amendment_id(),
        "date": day,
        "requirement": (
            f"Keep {spec.name} free of known vulnerabilities and within the organisation's "
            f"dependency rules{policy} (specfleet weekly evaluation)."
        ),
        "change": (f"Upgraded {moved} in {files}. Outputs, requirements and tests are unchanged."),
        "why": reasons,
    }


def build_candidate(
    *,
    baseline: Path,
    scratch: Path,
    mirror: Path,
    tip: str,
    spec: Spec,
    spec_path: str,
    plan: Plan,
    assessment: Assessment,
    policy_version: int | None,
    day: dt.date,
) -> Candidate:
    """Copy, edit, amend and commit the candidate (see the module docstring)."""
    worktree = scratch / "candidate"
    shutil.copytree(baseline, worktree, symlinks=True)
    python = spec.implementation.runtime.removeprefix("python")
    apply_proposal(worktree, assessment.pinset, plan.dependencies, python)
    changes = dependency_changes(plan.dependencies.upgrades)
    moved = pin_differences(
        assessment.pinset, read_pins(worktree, spec.implementation.dependencies)
    )

    git_dir, env = candidate_repository(worktree, scratch, mirror, tip, day)
    code_tree = _git(env, "write-tree")
    key = proposal_key(tip, code_tree)

    item = amendment_item(spec, changes, policy_version, day)
    spec_file = worktree / spec_path
    amended, appended = append_amendment(spec_file.read_text(encoding="utf-8"), item)
    check = check_spec_bytes(amended.encode(), spec_path)
    if check.spec is None:
        problem = check.problems[0].render() if check.problems else "invalid"
        raise InputError(f"{spec_path}: appending amendment {item['id']} broke the spec: {problem}")
    spec_file.write_text(amended, encoding="utf-8")
    _git(env, "add", "--all", ".")
    tree = _git(env, "write-tree")

    title = "specfleet: upgrade " + ", ".join(f"{c.package} to {c.target}" for c in changes)
    title = title if len(title) <= 200 else title[:199] + "…"
    message = (
        f"{title}\n\n"
        + "\n".join(f"- {c.package} {c.current} -> {c.target}: {c.why}" for c in changes)
        + f"\n\nSpec: amendment {item['id']} appended.\nProposal-Key: {key}\n"
    )
    commit = _git(env, "commit-tree", tree, "-p", tip, input_text=message)
    _git(env, "update-ref", f"refs/heads/proposal-{key[:12]}", commit)
    claimed = claimed_rules(assessment, changes)
    return Candidate(
        worktree,
        git_dir,
        commit,
        key,
        title,
        item["id"],
        appended,
        changes,
        claimed,
        pin_changes=tuple((d.name, d.old, d.new, d.direct, d.file) for d in moved),
    )


def candidate_repository(
    worktree: Path, scratch: Path, mirror: Path, tip: str, day: dt.date
) -> tuple[Path, dict[str, str]]:
    """A throwaway repository borrowing the mirror's objects, its index holding ``worktree``
    on top of ``tip``; returns it and the git environment that addresses it."""
    git_dir = scratch / "candidate.git"
    env = _git_env(git_dir, worktree, scratch / "candidate.index", day)
    _git(env, "init", "--quiet", "--bare", str(git_dir))
    (git_dir / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (git_dir / "objects" / "info" / "alternates").write_text(f"{mirror / 'objects'}\n")
    _git(env, "read-tree", tip)
    _git(env, "add", "--all", ".")
    return git_dir, env


def proposal_key(tip: str, tree: str) -> str:
    """Content-derived: the same change on the same baseline always has the same key."""
    return hashlib.sha256(f"specfleet-proposal-1:{tip}:{tree}".encode()).hexdigest()


def claimed_rules(assessment: Assessment, changes: tuple[DependencyChange, ...]) -> tuple[str, ...]:
    """Rule ids whose failing dependency findings sit on a pin the change moves."""
    moved = {(c.file, c.package) for c in changes}
    lines = {(pin.file, pin.line): str(pin.name) for pin in assessment.pinset.pins}
    claimed = {
        finding.rule_id
        for finding in assessment.findings
        if finding.kind == "dependency"
        and finding.status == "fail"
        and finding.fixable
        and finding.file is not None
        and (finding.file, lines.get((finding.file, finding.line or 0))) in moved
    }
    return tuple(sorted(claimed))


def _git_env(git_dir: Path, worktree: Path, index: Path, day: dt.date) -> dict[str, str]:
    when = dt.datetime.combine(day, dt.time(0, 0), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        **os.environ,
        **GIT_ENV,
        "GIT_DIR": str(git_dir),
        "GIT_WORK_TREE": str(worktree),
        "GIT_INDEX_FILE": str(index),
        "GIT_AUTHOR_NAME": IDENTITY["name"],
        "GIT_AUTHOR_EMAIL": IDENTITY["email"],
        "GIT_COMMITTER_NAME": IDENTITY["name"],
        "GIT_COMMITTER_EMAIL": IDENTITY["email"],
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def _git(env: dict[str, str], *args: str, input_text: str | None = None) -> str:
    if args[0] == "init":  # the repository does not exist yet: no GIT_DIR, no work tree
        env = {k: v for k, v in env.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    result = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.autocrlf=false", *args],
        input=input_text.encode() if input_text is not None else None,
        capture_output=True,
        env=env,
        cwd=env.get("GIT_WORK_TREE"),
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        stderr = redact_text(result.stderr.decode("utf-8", "replace").strip()[-500:])
        raise RepositoryError(f"git {args[0]} failed while committing the candidate: {stderr}")
    return result.stdout.decode().strip()
