"""MR tracking: merges and closes done on the forge are recorded on the rows and proposals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import AuditEntry, MergeRequest, Product, Proposal, session_scope
from specfleet.core.forges.gitlab import GitLabForge
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, Forge, MergeRequestParams
from specfleet.scheduler.tracking import track_merge_requests
from tests.conftest import RepoFactory, commit_files
from tests.support.fake_gitlab import FakeGitLab, fake_gitlab

TOKEN = "glpat-Zx9fakeTokenForTests0123456789"


@pytest.fixture
def server(tmp_path: Path, make_repo: RepoFactory) -> Iterator[FakeGitLab]:
    with fake_gitlab(tmp_path / "gitlab", TOKEN) as fake:
        for name in ("orders", "revenue", "footfall"):
            fake.add_project(f"data/{name}", make_repo({"app.py": "V = 1\n"}, name=name))
        yield fake


def open_merge_request(
    engine: Engine, forge: GitLabForge, make_repo: RepoFactory, product_id: str
) -> tuple[int, int]:
    """A proposal opened on GitLab and recorded as the pipeline records it."""
    worktree = make_repo({"app.py": "V = 1\n"}, name=f"work-{product_id}")
    commit = commit_files(worktree, {"app.py": "V = 2\n"}, "upgrade")
    project = f"data/{product_id}"
    forge.ensure_branch(BranchPush(project, EVERGREEN_BRANCH, commit, worktree))
    state = forge.ensure_merge_request(
        MergeRequestParams(project, product_id, "Upgrade", "evidence", f"key-{product_id}")
    )
    with session_scope(engine) as session:
        session.add(
            Product(
                id=product_id,
                name=product_id,
                repo_url=f"/repos/{product_id}",
                forge="gitlab",
                forge_project=project,
            )
        )
        session.flush()
        proposal = Proposal(product_id=product_id, key=f"key-{product_id}", title="Upgrade")
        session.add(proposal)
        session.flush()
        row = MergeRequest(
            product_id=product_id,
            proposal_id=proposal.id,
            forge="gitlab",
            forge_ref=state.ref,
            url=state.url,
            title="Upgrade",
            proposal_key=f"key-{product_id}",
            head_commit=commit,
        )
        session.add(row)
        session.flush()
        assert row.id is not None and proposal.id is not None
        return row.id, proposal.id


def states(engine: Engine) -> dict[str, tuple[str, str, bool, bool]]:
    with session_scope(engine) as session:
        rows = session.exec(select(MergeRequest, Proposal).join(Proposal)).all()
        return {
            mr.product_id: (
                mr.state,
                proposal.state,
                mr.merged_at is not None,
                mr.closed_at is not None,
            )
            for mr, proposal in rows
        }


def test_merged_and_closed_on_gitlab_are_recorded(
    engine: Engine, server: FakeGitLab, make_repo: RepoFactory
) -> None:
    """One poll records a merge, a close without merge, and leaves an open MR open."""
    forge = GitLabForge(server.base_url, TOKEN, max_retries=2, timeout_seconds=10)
    for product_id in ("orders", "revenue", "footfall"):
        open_merge_request(engine, forge, make_repo, product_id)
    server.set_state(1, 1, "merged")
    server.set_state(2, 1, "closed")

    def forge_for(product: Product) -> Forge:
        return forge

    report = track_merge_requests(engine, forge_for)
    assert report.checked == 3 and len(report.merged) == 1 and len(report.closed) == 1
    assert states(engine) == {
        "orders": ("merged", "merged", True, False),
        "revenue": ("closed", "closed", False, True),
        "footfall": ("open", "proposed", False, False),
    }
    with session_scope(engine) as session:
        actions = sorted(entry.action for entry in session.exec(select(AuditEntry)).all())
    assert actions == ["merge-request-closed", "merge-request-merged"]
    again = track_merge_requests(engine, forge_for)
    assert again.checked == 1 and again.merged == [] and again.closed == []


def test_unreachable_forge_leaves_rows_for_the_next_poll(
    engine: Engine, server: FakeGitLab, make_repo: RepoFactory
) -> None:
    """A forge failing with 5xx is reported and nothing is recorded; the next poll catches up."""
    forge = GitLabForge(server.base_url, TOKEN, max_retries=0, timeout_seconds=10)
    open_merge_request(engine, forge, make_repo, "orders")
    server.set_state(1, 1, "merged")
    server.fail_next(5, 500)
    report = track_merge_requests(engine, lambda product: forge)
    assert len(report.unreachable) == 1
    assert states(engine)["orders"][0] == "open"
    server.faults.clear()
    assert len(track_merge_requests(engine, lambda product: forge).merged) == 1
