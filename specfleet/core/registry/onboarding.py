"""Onboarding a repository that has no ``dataproduct.yaml`` yet: a drafted spec to start from.

``product add`` on such a repository stops (a product without a spec cannot be verified),
but when the branch is a dbt project it drafts the spec with ``spec init`` from a clone of
that branch, so the owner has something to review instead of an empty page. With
``--onboard`` the draft is committed on top of the branch (:func:`onboarding_commit`) and
offered as an onboarding merge request, as Renovate does with its configuration.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import MergeRequest, session_scope
from specfleet.core.errors import SpecfleetError
from specfleet.core.git import MirrorCache, normalise_repo_url, run_git
from specfleet.core.registry.decisions import Registration
from specfleet.core.spec.init import init_text

ONBOARDING_BRANCH = "specfleet/onboarding"
COMMITTER = ("specfleet", "specfleet@localhost")


@dataclass(frozen=True)
class OnboardingCommit:
    """The drafted spec, committed on top of the registered branch in a scratch clone."""

    repo_url: str
    mirror: Path
    text: str
    commit: str  # the commit adding the spec; its parent is the branch tip
    blob: str  # the spec's git blob id (what the registry keeps as spec_hash)
    work: Path  # the scratch clone holding ``commit`` (gone when the context ends)


@contextlib.contextmanager
def onboarding_commit(
    mirrors: MirrorCache, registration: Registration
) -> Iterator[OnboardingCommit | None]:
    """The draft committed at the registration's spec path, or None when no draft can be made
    (not a dbt project, or one ``spec init`` cannot read)."""
    url = normalise_repo_url(registration.repo)
    mirror = mirrors.fetch(url)
    with tempfile.TemporaryDirectory(prefix="specfleet-onboard-") as scratch:
        work = Path(scratch) / "work"
        run_git(None, "clone", "--quiet", "--branch", registration.branch, str(mirror), str(work))
        if not (work / "dbt_project.yml").is_file():
            yield None
            return
        try:
            text = init_text(work)
        except SpecfleetError:
            yield None
            return
        target = work / registration.spec
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        run_git(work, "add", "--", registration.spec)
        name, email = COMMITTER
        run_git(
            work,
            "-c",
            f"user.name={name}",
            "-c",
            f"user.email={email}",
            "commit",
            "--quiet",
            "--no-verify",  # the product's hooks are not ours to run
            "-m",
            f"Add {registration.spec} drafted by specfleet spec init",
        )
        commit = run_git(work, "rev-parse", "HEAD")
        blob = run_git(work, "rev-parse", f"HEAD:{registration.spec}")
        yield OnboardingCommit(url, mirror, text, commit, blob, work)


def save_draft(drafts: Path, repo_url: str, text: str) -> Path:
    """Keep the draft under ``drafts`` (named after the repository) for the owner to read."""
    drafts.mkdir(parents=True, exist_ok=True)
    last = repo_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", last)[:60]
    target = drafts / f"{name or 'repo'}.dataproduct.yaml"
    target.write_text(text)
    return target


def draft_for_repository(
    mirrors: MirrorCache, registration: Registration, drafts: Path
) -> Path | None:
    """Draft a spec from the registered branch; the draft's path, or None when not a dbt project."""
    with onboarding_commit(mirrors, registration) as made:
        if made is None:
            return None
        return save_draft(drafts, made.repo_url, made.text)


def waiting_onboarding(engine: Engine, product_id: str) -> str | None:
    """The address of the product's open onboarding merge request, if it has one."""
    with session_scope(engine) as session:
        row = session.exec(
            select(MergeRequest)
            .where(
                MergeRequest.product_id == product_id,
                MergeRequest.branch == ONBOARDING_BRANCH,
                MergeRequest.state == "open",
            )
            .order_by(col(MergeRequest.id).desc())
        ).first()
        return (row.url or f"!{row.forge_ref or row.id}") if row is not None else None
