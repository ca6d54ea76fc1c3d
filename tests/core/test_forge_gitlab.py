"""The GitLab forge through python-gitlab, against a fake GitLab speaking REST v4 over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import structlog

from specfleet.core.errors import ForgeError, ForgeTransientError, MergeRequestNotFound
from specfleet.core.forges.gitlab import GitLabForge
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.log import configure_logging
from specfleet.core.settings import Settings
from tests.conftest import commit_files
from tests.support.fake_gitlab import FakeGitLab, fake_gitlab

TOKEN = "glpat-Zx9fakeTokenForTests0123456789"
PROJECT = "data/orders"


@pytest.fixture
def server(tmp_path: Path, make_repo) -> Iterator[FakeGitLab]:
    source = make_repo({"app.py": "VERSION = 1\n"}, name="orders")
    with fake_gitlab(tmp_path / "gitlab", TOKEN) as fake:
        fake.add_project(PROJECT, source)
        fake.add_user("olivia", "olivia@example.com")
        fake.add_user("ravi", "ravi@example.com")
        yield fake


@pytest.fixture
def forge(server: FakeGitLab) -> GitLabForge:
    return GitLabForge(server.base_url, TOKEN, max_retries=3, timeout_seconds=10)


@pytest.fixture
def worktree(make_repo) -> Path:
    """A worker's checkout with a proposal committed on top of main."""
    path = make_repo({"app.py": "VERSION = 1\n"}, name="orders")
    commit_files(path, {"app.py": "VERSION = 2\n"}, "upgrade")
    return path


def params(key: str = "k1", **changes: object) -> MergeRequestParams:
    fields: dict[str, object] = {
        "project": PROJECT,
        "product_id": "orders",
        "title": "Upgrade pandas to 2.2.3",
        "description": "## Evidence\n\nall five checks pass",
        "proposal_key": key,
        "labels": ("specfleet", "dependencies"),
        "assignees": ("olivia@example.com",),
        "reviewers": ("ravi@example.com",),
    }
    fields.update(changes)
    return MergeRequestParams(**fields)  # type: ignore[arg-type]


def push(forge: GitLabForge, worktree: Path) -> str:
    commit = git.Repo(worktree).head.commit.hexsha
    return forge.ensure_branch(BranchPush(PROJECT, EVERGREEN_BRANCH, commit, worktree))


def test_branch_push_reaches_the_project_repository(forge, server, worktree):
    """ensure_branch pushes over authenticated smart HTTP; repeating it is harmless."""
    commit = push(forge, worktree)
    assert push(forge, worktree) == commit
    assert server.branch_tip(1, EVERGREEN_BRANCH) == commit
    pushes = [r for r in server.log if r.url.endswith("/git-receive-pack")]
    assert pushes and all(r.headers.get("Authorization", "").startswith("Basic ") for r in pushes)


def test_branch_push_with_a_wrong_token_fails_without_showing_it(server, worktree):
    """A push the server refuses is a ForgeError, and git never prompts or echoes the token."""
    wrong = "glpat-WrongTokenWrongToken012345"
    forge = GitLabForge(server.base_url, wrong, max_retries=1)
    server.token = wrong  # the API accepts it, git over HTTP checks against the real one
    server.git_authorised = lambda authorization: False  # type: ignore[method-assign]
    with pytest.raises(ForgeError, match="cannot push") as caught:
        push(forge, worktree)
    assert wrong not in str(caught.value)
    assert server.branch_tip(1, EVERGREEN_BRANCH) is None


def test_create_then_ensure_again_gives_one_merge_request(forge, server, worktree):
    """The first ensure creates the merge request, the second finds it and changes nothing."""
    head = push(forge, worktree)
    first = forge.ensure_merge_request(params())
    puts_before = sum(1 for r in server.log if r.method == "PUT")
    again = forge.ensure_merge_request(params())
    assert first.created and not again.created
    assert (first.ref, first.state, first.head_commit, first.proposal_key) == (
        "1",
        "open",
        head,
        "k1",
    )
    assert first.url.endswith(f"/{PROJECT}/-/merge_requests/1")
    assert sum(1 for r in server.log if r.method == "PUT") == puts_before
    assert len(server.merge_requests[1]) == 1


def test_owners_become_assignees_and_reviewers_with_labels(forge, server, worktree):
    """Assignees and reviewers come from owners' e-mail addresses; labels are set."""
    push(forge, worktree)
    state = forge.ensure_merge_request(params())
    request = server.find_mr(1, 1)
    assert request is not None
    assert request["assignee_ids"] == [100] and request["reviewer_ids"] == [101]
    assert set(state.labels) == {"specfleet", "dependencies"}


def test_unknown_owners_are_skipped_with_one_note(forge, server, worktree):
    """An owner with no GitLab account is not assigned; a note says so, once."""
    push(forge, worktree)
    owners = ("olivia@example.com", "ghost@example.com")
    state = forge.ensure_merge_request(params(assignees=owners))
    forge.ensure_merge_request(params(assignees=owners))
    request = server.find_mr(1, 1)
    assert request is not None and request["assignee_ids"] == [100]
    notes = server.notes[(1, int(state.ref))]
    assert len(notes) == 1 and "ghost@example.com" in notes[0]["body"]


def test_draft_until_verified_then_ready(forge, server, worktree):
    """A draft carries GitLab's Draft: prefix; publishing it verified removes the prefix."""
    push(forge, worktree)
    draft = forge.ensure_merge_request(params(draft=True))
    request = server.find_mr(1, 1)
    assert request is not None and request["title"] == "Draft: Upgrade pandas to 2.2.3"
    assert draft.draft and draft.title == "Upgrade pandas to 2.2.3"
    ready = forge.ensure_merge_request(params())
    assert not ready.draft and request["title"] == "Upgrade pandas to 2.2.3"


def test_newer_proposal_updates_the_merge_request_in_place(forge, server, worktree):
    """A newer proposal changes title, description and key of the same merge request."""
    push(forge, worktree)
    forge.ensure_merge_request(params())
    newer = forge.ensure_merge_request(params("k2", title="Upgrade pandas and numpy"))
    assert not newer.created and newer.ref == "1" and newer.proposal_key == "k2"
    assert newer.title == "Upgrade pandas and numpy"
    assert len(server.merge_requests[1]) == 1
    assert forge.open_merge_request(PROJECT, EVERGREEN_BRANCH) == newer


def test_notes_are_added_once_per_key(forge, server, worktree):
    """A note is found again by its hidden marker and not repeated."""
    push(forge, worktree)
    state = forge.ensure_merge_request(params())
    forge.ensure_note(PROJECT, state.ref, "verdict:k1", "Verified: all checks pass")
    forge.ensure_note(PROJECT, state.ref, "verdict:k1", "Verified: all checks pass")
    forge.ensure_note(PROJECT, state.ref, "verdict:k2", "Verified again")
    bodies = [note["body"] for note in server.notes[(1, 1)]]
    assert len(bodies) == 2
    assert bodies[0].startswith("Verified: all checks pass")
    assert "<!-- specfleet:note:verdict:k1 -->" in bodies[0]


def test_state_and_approvals_follow_the_server(forge, server, worktree):
    """Approvals, merge and close done on GitLab show in the merge request's state."""
    push(forge, worktree)
    forge.ensure_merge_request(params())
    server.approve(1, 1, "olivia")
    state = forge.merge_request(PROJECT, "1")
    assert state.approvals == ("olivia",) and state.state == "open"
    server.set_state(1, 1, "merged")
    assert forge.merge_request(PROJECT, "1").state == "merged"
    assert forge.open_merge_request(PROJECT, EVERGREEN_BRANCH) is None
    with pytest.raises(MergeRequestNotFound):
        forge.merge_request(PROJECT, "7")


def test_500s_are_retried_without_duplicates(forge, server, worktree):
    """Two 500s before the create are retried and exactly one merge request exists."""
    push(forge, worktree)
    server.fail_next(2, status=500, method="POST")
    state = forge.ensure_merge_request(params())
    assert state.created
    assert len(server.merge_requests[1]) == 1
    creates = [r for r in server.log if r.method == "POST" and r.url.endswith("/merge_requests")]
    assert len(creates) == 3


def test_lost_create_response_does_not_duplicate(forge, server, worktree):
    """A create that succeeded but answered 500 is found again (GitLab's 409), not repeated."""
    push(forge, worktree)
    server.fail_next(1, status=500, after_processing=True, method="POST")
    state = forge.ensure_merge_request(params())
    assert state.ref == "1" and state.proposal_key == "k1"
    assert len(server.merge_requests[1]) == 1


def test_rate_limit_with_retry_after_is_obeyed(forge, server, worktree):
    """A 429 with Retry-After is waited out and retried; the merge request exists once."""
    push(forge, worktree)
    start = len(server.log)
    server.fail_next(1, status=429, retry_after=1, method="POST")
    state = forge.ensure_merge_request(params())
    assert state.ref == "1"
    assert len(server.merge_requests[1]) == 1
    posts = [r for r in server.log[start:] if r.method == "POST"]
    assert len(posts) == 2 and posts[0].body == posts[1].body


def test_persistent_5xx_becomes_a_transient_error(forge, server, worktree):
    """After max_retries failures the error is ForgeTransientError for the task to retry."""
    push(forge, worktree)
    server.fail_next(10, status=503)
    with pytest.raises(ForgeTransientError, match="503"):
        forge.ensure_merge_request(params())
    server.faults.clear()
    assert forge.open_merge_request(PROJECT, EVERGREEN_BRANCH) is None


def test_unreachable_server_is_a_transient_error(tmp_path):
    """A GitLab that does not answer at all is a ForgeTransientError, not a crash."""
    with fake_gitlab(tmp_path / "gone", TOKEN) as gone:
        url = gone.base_url
    forge = GitLabForge(url, TOKEN, max_retries=1, timeout_seconds=2)
    with pytest.raises(ForgeTransientError, match="cannot be reached"):
        forge.open_merge_request(PROJECT, EVERGREEN_BRANCH)


def test_bad_token_is_a_forge_error_without_the_token(server):
    """A refused token is a ForgeError whose message does not repeat any token."""
    forge = GitLabForge(server.base_url, "glpat-WrongTokenWrongToken012345", max_retries=1)
    with pytest.raises(ForgeError) as caught:
        forge.open_merge_request(PROJECT, EVERGREEN_BRANCH)
    assert "401" in str(caught.value) and "WrongToken" not in str(caught.value)


def test_token_is_never_in_urls_bodies_descriptions_or_logs(
    forge, server, worktree, capsys, tmp_path
):
    """The token travels only in headers: never in a URL, body, description, note or log."""
    configure_logging(Settings(home=tmp_path, log_format="json", gitlab_token=TOKEN))
    push(forge, worktree)
    leaky = params(description=f"token is {TOKEN} oops")
    state = forge.ensure_merge_request(leaky)
    forge.ensure_note(PROJECT, state.ref, "k", f"and again {TOKEN}")
    structlog.get_logger().info("published", forge=repr(forge), url=state.url)
    for request in server.log:
        assert TOKEN not in request.url and TOKEN not in request.body
        if request.url.startswith("/api/"):
            assert request.headers.get("PRIVATE-TOKEN") == TOKEN
        else:  # git over HTTP: Basic auth in a header given through GIT_CONFIG_* variables
            assert request.headers.get("Authorization", "").startswith("Basic ")
    rendered = json.dumps([server.merge_requests, list(server.notes.values())])
    assert TOKEN not in rendered
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    bare = git.Repo(server.projects[1]["_bare"])
    assert TOKEN not in json.dumps([r.url for r in bare.remotes])
    assert all("max_retries" not in request.url for request in server.log)
