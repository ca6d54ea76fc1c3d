"""``specfleet mr``: reviewing, approving, merging and closing local merge requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import git
import pytest
from sqlmodel import select

from specfleet.core.db import AuditEntry, Product, Proposal, make_engine, session_scope
from specfleet.core.db.engine import ensure_schema
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.core.settings import get_settings
from tests.conftest import RepoFactory, commit_files

Cli = Callable[..., CompletedProcess[str]]


@pytest.fixture
def forge(specfleet_home: Path, make_repo: RepoFactory) -> Iterator[LocalForge]:
    """The CLI's own database and forge, holding one open merge request (id 1)."""
    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="/x", owners=["o@x.io"]))
        session.add(Proposal(product_id="orders", key="k1", title="Upgrade pandas"))
    local = LocalForge(engine, get_settings().forge_dir)
    source = make_repo({"app.py": "VERSION = 1\n"}, name="orders")
    local.ensure_project("orders", source)
    repo = git.Repo(source)
    repo.git.checkout("-b", "work")
    head = commit_files(source, {"app.py": "VERSION = 2\n"}, "upgrade")
    repo.close()
    local.ensure_branch(BranchPush("orders", EVERGREEN_BRANCH, head, source))
    yield local
    engine.dispose()


def publish(forge: LocalForge, draft: bool = False) -> None:
    forge.ensure_merge_request(
        MergeRequestParams(
            project="orders",
            product_id="orders",
            title="Upgrade pandas to 2.2.3",
            description="**Verification: passed.**\n\n## Evidence\n\n| check | result |\n"
            "|---|---|\n| tests | pass |",
            proposal_key="k1",
            draft=draft,
        )
    )


def test_list_and_show_a_merge_request(cli: Cli, forge: LocalForge) -> None:
    """list shows the open merge request; show renders its description and its diff."""
    publish(forge)
    listed = cli("mr", "list")
    assert listed.returncode == 0, listed.stderr
    assert "orders" in listed.stdout and "Upgrade pandas to 2.2.3" in listed.stdout
    assert "verified green" in listed.stdout  # the verdict its description records
    assert "No merged merge requests." in cli("mr", "list", "--state", "merged").stdout
    shown = cli("mr", "show", "1", "--diff")
    assert shown.returncode == 0, shown.stderr
    assert "Evidence" in shown.stdout and "## Evidence" not in shown.stdout  # rendered
    assert "specfleet/evergreen -> main" in shown.stdout
    assert "+VERSION = 2" in shown.stdout


def test_approve_then_merge_moves_main(cli: Cli, forge: LocalForge) -> None:
    """Approving and merging from the CLI fast-forwards main and records who did it."""
    publish(forge)
    refused = cli("mr", "merge", "1")
    assert refused.returncode == 1 and "no approval" in refused.stderr
    approved = cli("mr", "approve", "1", "--as", "owner@example.com")
    assert approved.returncode == 0, approved.stderr
    assert "approved by owner@example.com" in approved.stdout
    merged = cli("mr", "merge", "1")
    assert merged.returncode == 0, merged.stderr
    state = forge.merge_request("orders", "1")
    bare = git.Repo(forge.project_path("orders"))
    assert bare.commit("refs/heads/main").hexsha == state.head_commit
    bare.close()
    with session_scope(forge.engine) as session:
        actors = {
            (entry.action, entry.actor)
            for entry in session.exec(
                select(AuditEntry).where(AuditEntry.subject_type == "merge_request")
            )
        }
        proposal = session.exec(select(Proposal)).one()
    assert ("mr.merge", "tester@example.com") in actors
    assert ("mr.approve", "owner@example.com") in actors
    assert proposal.state == "merged"
    again = cli("mr", "merge", "1")
    assert again.returncode == 1 and "merged" in again.stderr


def test_draft_refusals_and_close(cli: Cli, forge: LocalForge) -> None:
    """A draft cannot be approved (exit 1, clear message); closing it marks the proposal."""
    publish(forge, draft=True)
    refused = cli("mr", "approve", "1")
    assert refused.returncode == 1 and "draft" in refused.stderr
    closed = cli("mr", "close", "1", "--as", "owner@example.com")
    assert closed.returncode == 0, closed.stderr
    assert "closed" in cli("mr", "list", "--state", "closed").stdout
    with session_scope(forge.engine) as session:
        assert session.exec(select(Proposal)).one().state == "closed"


def test_unknown_id_and_bad_usage(cli: Cli, forge: LocalForge) -> None:
    """An unknown merge request exits 1; a malformed command exits 2."""
    missing = cli("mr", "show", "99")
    assert missing.returncode == 1 and "no merge request 99" in missing.stderr
    assert cli("mr", "approve", "one").returncode == 2
    assert cli("mr", "list", "--state", "half").returncode == 2
