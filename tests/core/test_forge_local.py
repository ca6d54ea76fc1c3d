"""The local forge: bare repositories and merge-request rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import git
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import AuditEntry, MergeRequest, Product, Proposal, session_scope
from specfleet.core.errors import ForgeError, InputError, MergeRequestNotFound, MergeRequestRefused
from specfleet.core.forges.decisions import (
    MergeRequestRecord,
    ProposalRecord,
    decide_publication,
)
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.core.git import normalise_repo_url
from tests.conftest import commit_files

PRODUCT = "orders"


@pytest.fixture
def forge(engine: Engine, specfleet_home: Path) -> LocalForge:
    with session_scope(engine) as session:
        session.add(Product(id=PRODUCT, name="Orders", repo_url="/nowhere", owners=["o@x.io"]))
    return LocalForge(engine, specfleet_home / "forge")


@pytest.fixture
def source(make_repo) -> Path:
    return make_repo({"README.md": "orders\n", "app.py": "VERSION = 1\n"}, name="orders")


def proposal_commit(source: Path, files: dict[str, str], message: str = "proposal") -> str:
    """A commit on a side branch of ``source`` (as a worker's worktree would make)."""
    repo = git.Repo(source)
    repo.git.checkout("-B", "work", "main")
    sha = commit_files(source, files, message)
    repo.git.checkout("main")
    repo.close()
    return sha


def params(key: str = "k1", **changes: object) -> MergeRequestParams:
    fields: dict[str, object] = {
        "project": PRODUCT,
        "product_id": PRODUCT,
        "title": "Upgrade pandas",
        "description": "## Evidence\n\nall green",
        "proposal_key": key,
        "assignees": ("o@x.io",),
    }
    fields.update(changes)
    return MergeRequestParams(**fields)  # type: ignore[arg-type]


def publish(forge: LocalForge, source: Path, files: dict[str, str], key: str, **changes: object):
    commit = proposal_commit(source, files)
    forge.ensure_branch(BranchPush(PRODUCT, EVERGREEN_BRANCH, commit, source))
    return forge.ensure_merge_request(params(key, **changes))


def bare_tip(forge: LocalForge, branch: str) -> str:
    repo = git.Repo(forge.project_path(PRODUCT))
    try:
        return repo.commit(f"refs/heads/{branch}").hexsha
    finally:
        repo.close()


def add_proposal(engine: Engine, key: str) -> None:
    with session_scope(engine) as session:
        session.add(Proposal(product_id=PRODUCT, key=key, title="p"))


def test_ensure_project_creates_a_bare_repository_usable_as_repo_url(forge, source):
    """A project is a bare copy of the source's branches whose path registers as a repo URL."""
    url = forge.ensure_project(PRODUCT, source)
    assert normalise_repo_url(url) == url
    assert forge.ensure_project(PRODUCT, source) == url
    assert bare_tip(forge, "main") == git.Repo(source).head.commit.hexsha
    clone = subprocess.run(["git", "clone", "-q", url, str(source.parent / "clone")], check=False)
    assert clone.returncode == 0
    assert (source.parent / "clone" / "app.py").read_text() == "VERSION = 1\n"


def test_project_names_that_escape_the_forge_are_refused(forge, source):
    """A project name with a path in it is an input error, not a directory elsewhere."""
    with pytest.raises(InputError, match="project name"):
        forge.ensure_project("../evil", source)


def test_ensure_branch_is_repeatable_and_force_updates(forge, source):
    """Pushing the same commit twice is harmless; a newer proposal rewrites the branch."""
    forge.ensure_project(PRODUCT, source)
    first = proposal_commit(source, {"app.py": "VERSION = 2\n"})
    push = BranchPush(PRODUCT, EVERGREEN_BRANCH, first, source)
    assert forge.ensure_branch(push) == first
    assert forge.ensure_branch(push) == first
    repo = git.Repo(source)
    repo.git.branch("-D", "work")
    repo.close()
    second = proposal_commit(source, {"app.py": "VERSION = 3\n"})  # not a descendant of first
    assert forge.ensure_branch(BranchPush(PRODUCT, EVERGREEN_BRANCH, second, source)) == second
    assert bare_tip(forge, EVERGREEN_BRANCH) == second


def test_ensure_merge_request_twice_gives_one_merge_request(forge, source, engine):
    """A retried publish finds the open merge request instead of opening a second one."""
    forge.ensure_project(PRODUCT, source)
    first = publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    again = forge.ensure_merge_request(params("k1"))
    assert first.created and not again.created
    assert first == again
    assert first.url == f"specfleet://{PRODUCT}/merge_requests/1"
    with session_scope(engine) as session:
        rows = session.exec(select(MergeRequest)).all()
        creates = session.exec(select(AuditEntry).where(AuditEntry.action == "mr.create")).all()
    assert len(rows) == 1 and len(creates) == 1
    assert creates[0].detail is not None and creates[0].detail["assignees"] == ["o@x.io"]


def test_concurrent_publishes_open_one_merge_request(forge, source, engine):
    """Two workers publishing the same proposal at once still leave one merge request."""
    forge.ensure_project(PRODUCT, source)
    commit = proposal_commit(source, {"app.py": "VERSION = 2\n"})
    forge.ensure_branch(BranchPush(PRODUCT, EVERGREEN_BRANCH, commit, source))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(forge.ensure_merge_request(params())))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result.created for result in results) == 1
    with session_scope(engine) as session:
        assert len(session.exec(select(MergeRequest)).all()) == 1


def test_newer_proposal_updates_the_open_merge_request_in_place(forge, source, engine):
    """A newer proposal rewrites title, key, head and draft of the same merge request."""
    forge.ensure_project(PRODUCT, source)
    first = publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1", draft=True)
    second = publish(
        forge, source, {"app.py": "VERSION = 3\n"}, "k2", title="Upgrade pandas and numpy"
    )
    assert not second.created
    assert second.ref == first.ref
    assert (second.proposal_key, second.title, second.draft) == (
        "k2",
        "Upgrade pandas and numpy",
        False,
    )
    assert second.head_commit == bare_tip(forge, EVERGREEN_BRANCH) != first.head_commit
    assert forge.open_merge_request(PRODUCT, EVERGREEN_BRANCH) == second
    with session_scope(engine) as session:
        assert len(session.exec(select(MergeRequest)).all()) == 1


def test_merge_request_needs_the_branch_pushed_first(forge, source):
    """Opening a merge request for a branch that is not on the forge is a forge error."""
    forge.ensure_project(PRODUCT, source)
    with pytest.raises(ForgeError, match="push it"):
        forge.ensure_merge_request(params())


def test_notes_are_added_once_per_key(forge, source):
    """A repeated note with the same key adds nothing; another key adds a note."""
    forge.ensure_project(PRODUCT, source)
    state = publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    forge.ensure_note(PRODUCT, state.ref, "verdict:k1", "verified")
    forge.ensure_note(PRODUCT, state.ref, "verdict:k1", "verified")
    forge.ensure_note(PRODUCT, state.ref, "verdict:k2", "verified again")
    bodies = [(note.detail or {})["body"] for note in forge.notes(PRODUCT, state.ref)]
    assert bodies == ["verified", "verified again"]


def test_unknown_merge_request_is_not_found(forge, source):
    """Asking for a merge request that does not exist raises MergeRequestNotFound."""
    forge.ensure_project(PRODUCT, source)
    with pytest.raises(MergeRequestNotFound):
        forge.merge_request(PRODUCT, "41")
    with pytest.raises(MergeRequestNotFound):
        forge.approve(41, "a@x.io")


def row_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        row = session.exec(select(MergeRequest)).one()
        assert row.id is not None
        return row.id


def test_approval_is_recorded_once_per_person(forge, source, engine):
    """Approving twice counts once; each person's approval is kept."""
    forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    mr = row_id(engine)
    forge.approve(mr, "a@x.io")
    forge.approve(mr, "a@x.io")
    state = forge.approve(mr, "b@x.io")
    assert state.approvals == ("a@x.io", "b@x.io")
    with session_scope(engine) as session:
        audits = session.exec(select(AuditEntry).where(AuditEntry.action == "mr.approve")).all()
    assert [entry.actor for entry in audits] == ["a@x.io", "b@x.io"]


def test_drafts_cannot_be_approved_or_merged(forge, source, engine):
    """A draft (not verified) merge request refuses approval and merge with a clear message."""
    forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1", draft=True)
    mr = row_id(engine)
    with pytest.raises(MergeRequestRefused, match="draft"):
        forge.approve(mr, "a@x.io")
    with pytest.raises(MergeRequestRefused, match="draft"):
        forge.merge(mr, "a@x.io", require_approval=False)


def test_merge_fast_forwards_target_and_marks_the_proposal_merged(forge, source, engine):
    """Merging moves main in the bare repository to the head and records the merge."""
    forge.ensure_project(PRODUCT, source)
    add_proposal(engine, "k1")
    state = publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    mr = row_id(engine)
    with pytest.raises(MergeRequestRefused, match="no approval"):
        forge.merge(mr, "a@x.io")
    forge.approve(mr, "a@x.io")
    merged = forge.merge(mr, "a@x.io")
    assert merged.state == "merged"
    assert bare_tip(forge, "main") == state.head_commit
    with session_scope(engine) as session:
        proposal = session.exec(select(Proposal)).one()
        row = session.exec(select(MergeRequest)).one()
    assert proposal.state == "merged" and row.merged_at is not None
    with pytest.raises(MergeRequestRefused, match="merged"):
        forge.close(mr, "a@x.io")
    history = decide_publication("k1", [MergeRequestRecord.from_row(row)])
    assert history.action == "already-merged"


def test_merge_writes_a_merge_commit_when_main_moved_without_conflict(forge, source, engine):
    """When main gained an unrelated commit, merging creates a merge commit with both parents."""
    url = forge.ensure_project(PRODUCT, source)
    state = publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    clone = source.parent / "other"
    repo = git.Repo.clone_from(url, clone)
    commit_files(clone, {"NOTES.md": "unrelated\n"})
    repo.git.push("origin", "HEAD:main")
    moved = repo.head.commit.hexsha
    repo.close()
    mr = row_id(engine)
    forge.approve(mr, "a@x.io")
    forge.merge(mr, "a@x.io")
    bare = git.Repo(forge.project_path(PRODUCT))
    tip = bare.commit("refs/heads/main")
    assert {parent.hexsha for parent in tip.parents} == {moved, state.head_commit}
    assert tip.tree["app.py"].data_stream.read() == b"VERSION = 2\n"
    assert tip.tree["NOTES.md"].data_stream.read() == b"unrelated\n"
    bare.close()


def test_merge_refuses_a_conflicting_target(forge, source, engine):
    """When main changed the same lines, merging is refused and main stays where it was."""
    url = forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    clone = source.parent / "other"
    repo = git.Repo.clone_from(url, clone)
    commit_files(clone, {"app.py": "VERSION = 99\n"})
    repo.git.push("origin", "HEAD:main")
    moved = repo.head.commit.hexsha
    repo.close()
    mr = row_id(engine)
    forge.approve(mr, "a@x.io")
    with pytest.raises(MergeRequestRefused, match=r"conflicts with main in app\.py"):
        forge.merge(mr, "a@x.io")
    assert bare_tip(forge, "main") == moved
    assert forge.merge_request(PRODUCT, "1").state == "open"


def test_merge_refuses_a_branch_that_moved_since_publishing(forge, source, engine):
    """A head pushed after the merge request was last updated is not merged unseen."""
    forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    mr = row_id(engine)
    forge.approve(mr, "a@x.io")
    newer = proposal_commit(source, {"app.py": "VERSION = 3\n"})
    forge.ensure_branch(BranchPush(PRODUCT, EVERGREEN_BRANCH, newer, source))
    with pytest.raises(MergeRequestRefused, match="reviewed"):
        forge.merge(mr, "a@x.io")


def test_new_head_resets_approvals(forge, source, engine):
    """An approval covers the code it saw: a newer proposal clears it."""
    forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    forge.approve(row_id(engine), "a@x.io")
    state = publish(forge, source, {"app.py": "VERSION = 3\n"}, "k2")
    assert state.approvals == ()


def test_closed_proposal_is_suppressed_until_its_key_changes(forge, source, engine):
    """Closing marks the proposal closed; the same key is then suppressed, a new one created."""
    forge.ensure_project(PRODUCT, source)
    add_proposal(engine, "k1")
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    mr = row_id(engine)
    closed = forge.close(mr, "owner@x.io")
    assert closed.state == "closed"
    assert forge.open_merge_request(PRODUCT, EVERGREEN_BRANCH) is None
    with pytest.raises(MergeRequestRefused, match="closed"):
        forge.approve(mr, "owner@x.io")
    with session_scope(engine) as session:
        rows = [MergeRequestRecord.from_row(r) for r in session.exec(select(MergeRequest))]
        proposals = [ProposalRecord.from_row(p) for p in session.exec(select(Proposal))]
    assert proposals == [ProposalRecord("k1", "closed")]
    assert decide_publication("k1", rows, proposals).action == "suppressed"
    assert decide_publication("k2", rows, proposals).action == "create"
    reopened = publish(forge, source, {"app.py": "VERSION = 3\n"}, "k2")
    assert reopened.created and reopened.ref == "2"


def test_diff_shows_the_proposed_change(forge, source, engine):
    """The diff of a merge request is target...head from the bare repository."""
    forge.ensure_project(PRODUCT, source)
    publish(forge, source, {"app.py": "VERSION = 2\n"}, "k1")
    diff = forge.diff(row_id(engine))
    assert "-VERSION = 1" in diff and "+VERSION = 2" in diff
