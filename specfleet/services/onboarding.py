"""Onboard a repository without a spec: register it from a drafted spec and open the
onboarding merge request that carries the draft (the way Renovate onboards a repository).

Until that merge request is merged the branch has no spec, and each evaluation of the
product ends ``no-change`` pointing at it (``waiting_onboarding`` in core.registry.onboarding);
once merged, the product is evaluated like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import MergeRequest, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import SpecInvalid, SpecMissing
from specfleet.core.forges.interface import (
    BranchPush,
    Forge,
    MergeRequestParams,
    MergeRequestState,
)
from specfleet.core.forges.local import LocalForge
from specfleet.core.git import MirrorCache
from specfleet.core.registry import Registration, Registry, ResolvedProduct
from specfleet.core.registry.onboarding import (
    ONBOARDING_BRANCH,
    OnboardingCommit,
    onboarding_commit,
    save_draft,
)
from specfleet.core.registry.reader import check_many, with_default_branch
from specfleet.core.spec.draft import OWNER_MARK


@dataclass(frozen=True)
class Onboarding:
    """What ``product add --onboard`` did."""

    product_id: str
    registration: str  # added, updated, reactivated or unchanged
    draft: Path
    url: str
    ref: str
    created: bool
    to_review: int  # lines of the draft marked for the owner


def onboard_product(
    engine: Engine,
    mirrors: MirrorCache,
    forge: Forge,
    actor: str,
    registration: Registration,
    drafts: Path,
) -> Onboarding:
    """Register the product from its drafted spec and open the onboarding merge request;
    SpecMissing when no draft can be made (the branch is not a dbt project)."""
    if "branch" not in registration.model_fields_set:  # none named: the repository's default
        registration = with_default_branch(mirrors, registration)
    with onboarding_commit(mirrors, registration) as made:
        if made is None:
            raise SpecMissing(
                f"{registration.repo}@{registration.branch}: no {registration.spec}, and not a "
                "dbt project to draft one from; write it (specfleet spec init --from-odcs helps "
                "with a data contract) and commit it"
            )
        draft = save_draft(drafts, made.repo_url, made.text)
        label = f"{made.repo_url}@{ONBOARDING_BRANCH}:{registration.spec}"
        (facts,) = check_many([(made.text.encode(), label)])
        if isinstance(facts, SpecInvalid):
            raise facts  # a draft that does not validate is a bug to report, not to open
        resolved = ResolvedProduct(registration, made.repo_url, facts, made.commit, made.blob)
        registered = Registry(engine, mirrors, actor).record(resolved)
        project = registration.project or facts.id  # as the weekly merge requests name it
        if isinstance(forge, LocalForge):
            forge.ensure_project(project, made.mirror)
        forge.ensure_branch(BranchPush(project, ONBOARDING_BRANCH, made.commit, made.work))
        state = forge.ensure_merge_request(
            MergeRequestParams(
                project=project,
                product_id=facts.id,
                title=f"Onboard {facts.id} to specfleet: add {registration.spec}",
                description=onboarding_description(made, registration, facts.id),
                proposal_key=f"onboarding-{made.blob[:12]}",
                source_branch=ONBOARDING_BRANCH,
                target_branch=registration.branch,
                labels=("specfleet", "onboarding"),
                assignees=registration.owners,
                reviewers=registration.owners,
            )
        )
    if not isinstance(forge, LocalForge):
        _mirror_row(engine, facts.id, state, registration.branch)
    return Onboarding(
        facts.id,
        registered.status,
        draft,
        state.url,
        state.ref,
        state.created,
        len(_marked_lines(made.text)),
    )


def onboarding_description(made: OnboardingCommit, registration: Registration, product: str) -> str:
    """What the owner reads before merging: what the file is, what to check, what follows."""
    marked = [
        f"- line {number}: `{line.strip()[:120]}`" for number, line in _marked_lines(made.text)
    ]
    shown = marked[:40] + ([f"- … and {len(marked) - 40} more"] if len(marked) > 40 else [])
    return "\n".join(
        [
            f"This merge request adds `{registration.spec}` to `{registration.branch}`: the spec "
            f"of the data product **{product}**, drafted by `specfleet spec init` from the dbt "
            "project (models, columns, types and tests from schema.yml, seeds as inputs, the "
            "Python target from the dependency files).",
            "",
            "Nothing else changes. Until this is merged the product is registered but not "
            "evaluated: each weekly evaluation ends *no-change* and points here.",
            "",
            "## Before you merge",
            "",
            f"{len(marked)} lines are marked `{OWNER_MARK}` for you to fill in or confirm "
            "(owners, purpose, why each column exists):",
            "",
            *(shown or ["- none"]),
            "",
            "Edit them on this branch (`specfleet spec validate` checks the file), then merge.",
            "",
            "## After the merge",
            "",
            "The spec on the branch is the truth: every week specfleet re-implements the product "
            "against it under the current policies and opens a verified merge request when "
            "something should change.",
        ]
    )


def _marked_lines(text: str) -> list[tuple[int, str]]:
    """The draft's lines left for the owner (not the header's note explaining the mark)."""
    return [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if OWNER_MARK in line and f"'{OWNER_MARK}'" not in line
    ]


def _mirror_row(engine: Engine, product_id: str, state: MergeRequestState, target: str) -> None:
    """A GitLab or GitHub merge request kept in the registry like the weekly ones."""
    with session_scope(engine) as session:
        row = session.exec(
            select(MergeRequest).where(
                MergeRequest.product_id == product_id,
                MergeRequest.forge == state.forge,
                MergeRequest.forge_ref == state.ref,
            )
        ).first() or MergeRequest(
            product_id=product_id, forge=state.forge, forge_ref=state.ref, title=state.title
        )
        row.url, row.title, row.state = state.url, state.title[:300], state.state
        row.branch, row.target_branch = ONBOARDING_BRANCH, target
        row.head_commit = state.head_commit
        row.labels = list(state.labels)
        row.proposal_key = state.proposal_key
        row.updated_at = utcnow()
        session.add(row)
