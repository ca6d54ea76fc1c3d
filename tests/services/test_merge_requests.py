"""Approving, merging and closing merge requests of the local forge."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import git
import pytest
from sqlalchemy import Engine

from specfleet.core.db import MergeRequest, session_scope
from specfleet.core.errors import MergeRequestNotFound, MergeRequestRefused
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.services.merge_requests import act_on_merge_request, revert_merge_request
from tests.conftest import commit_files


@pytest.fixture
def forge(db: Engine, specfleet_home: Path) -> LocalForge:
    return LocalForge(db, specfleet_home / "forge")


def open_merge_request(forge: LocalForge, repo: Path) -> int:
    """A proposal committed on a side branch of the product's repository, opened as an MR."""
    forge.ensure_project("invoices", repo)
    checkout = git.Repo(repo)
    checkout.git.checkout("-B", "work", "main")
    commit = commit_files(repo, {"NOTES.md": "evergreen\n"}, "proposal")
    checkout.git.checkout("main")
    checkout.close()
    forge.ensure_branch(BranchPush("invoices", EVERGREEN_BRANCH, commit, repo))
    state = forge.ensure_merge_request(
        MergeRequestParams(
            project="invoices",
            product_id="invoices",
            title="Add notes",
            description="## Evidence\n\nall green",
            proposal_key="k1",
            assignees=("ana@example.com",),
        )
    )
    return int(state.ref)


def test_approve_then_merge_as_an_owner(db: Engine, forge: LocalForge, invoices: Path) -> None:
    number = open_merge_request(forge, invoices)
    seen: list[tuple[str, Sequence[str]]] = []
    approved = act_on_merge_request(
        db, forge, "ana@example.com", number, "approve", lambda *given: seen.append(given)
    )
    assert approved.approvals == ("ana@example.com",)
    assert seen == [("invoices", ["ana@example.com", "raj@example.com"])]
    merged = act_on_merge_request(db, forge, "ana@example.com", number, "merge")
    assert merged.state == "merged"
    seen.clear()
    revert = revert_merge_request(
        db, forge, "raj@example.com", number, lambda *given: seen.append(given)
    )
    assert revert != number and seen == [("invoices", ["ana@example.com", "raj@example.com"])]
    with session_scope(db) as session:
        opened = session.get(MergeRequest, revert)
        assert opened is not None and opened.state == "open" and "Revert" in opened.title


def test_close_unknown_and_other_forges(db: Engine, forge: LocalForge, invoices: Path) -> None:
    number = open_merge_request(forge, invoices)
    assert act_on_merge_request(db, forge, "ana@example.com", number, "close").state == "closed"
    with pytest.raises(MergeRequestNotFound):
        act_on_merge_request(db, forge, "ana@example.com", 999, "approve")
    with session_scope(db) as session:
        row = MergeRequest(
            product_id="invoices",
            forge="gitlab",
            forge_ref="7",
            url="https://gitlab.example.com/mr/7",
            title="elsewhere",
            branch=EVERGREEN_BRANCH,
            target_branch="main",
        )
        session.add(row)
        session.flush()
        elsewhere = row.id
    assert elsewhere is not None
    with pytest.raises(MergeRequestRefused, match="lives on gitlab; merge it there"):
        act_on_merge_request(db, forge, "ana@example.com", elsewhere, "merge")
