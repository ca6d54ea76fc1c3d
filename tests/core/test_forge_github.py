"""The GitHub forge over httpx, against a fake GitHub speaking REST JSON and GraphQL over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import structlog

from specfleet.core.errors import ForgeError, ForgeTransientError, InputError, MergeRequestNotFound
from specfleet.core.forges.github import GitHubForge, approvers
from specfleet.core.forges.github_http import plan_retry
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.log import configure_logging
from specfleet.core.settings import Settings
from tests.conftest import commit_files
from tests.support.fake_github import FakeGitHub, fake_github

TOKEN = "ghp_Zx9fakeTokenForTests0123456789abcdefgh"
REPO = "data-org/orders"


@pytest.fixture
def server(tmp_path: Path, make_repo) -> Iterator[FakeGitHub]:
    source = make_repo({"app.py": "VERSION = 1\n"}, name="orders")
    with fake_github(tmp_path / "github", TOKEN) as fake:
        fake.add_repository(REPO, source)
        fake.add_user("olivia", "olivia@example.com")
        fake.add_user("ravi", "ravi@example.com")
        yield fake


@pytest.fixture
def forge(server: FakeGitHub) -> GitHubForge:
    return GitHubForge(server.api_url, TOKEN, max_retries=3, timeout_seconds=10)


@pytest.fixture
def worktree(make_repo) -> Path:
    """A worker's checkout with a proposal committed on top of main."""
    path = make_repo({"app.py": "VERSION = 1\n"}, name="orders")
    commit_files(path, {"app.py": "VERSION = 2\n"}, "upgrade")
    return path


def params(key: str = "k1", **changes: object) -> MergeRequestParams:
    fields: dict[str, object] = {
        "project": REPO,
        "product_id": "orders",
        "title": "Upgrade pandas to 2.2.3",
        "description": "## Evidence\n\nall five checks pass",
        "proposal_key": key,
        "labels": ("specfleet", "dependencies"),
        "assignees": ("olivia@example.com",),
        "reviewers": ("olivia@example.com", "ravi@example.com"),
    }
    fields.update(changes)
    return MergeRequestParams(**fields)  # type: ignore[arg-type]


def push(forge: GitHubForge, worktree: Path) -> str:
    commit = git.Repo(worktree).head.commit.hexsha
    return forge.ensure_branch(BranchPush(REPO, EVERGREEN_BRANCH, commit, worktree))


def pull_creates(server: FakeGitHub, start: int = 0) -> int:
    return sum(
        1 for r in server.log[start:] if r.method == "POST" and r.url.endswith(f"{REPO}/pulls")
    )


def test_branch_push_reaches_the_repository_with_the_token_as_basic_auth(forge, server, worktree):
    """ensure_branch pushes over authenticated smart HTTP; repeating it is harmless."""
    commit = push(forge, worktree)
    assert push(forge, worktree) == commit
    assert server.branch_tip(REPO, EVERGREEN_BRANCH) == commit
    pushes = [r for r in server.log if r.url.endswith("/git-receive-pack")]
    assert pushes and all(r.headers.get("Authorization", "").startswith("Basic ") for r in pushes)


def test_a_pull_request_is_opened_updated_in_place_and_tracked_to_merged(forge, server, worktree):
    """One pull request per product: created, updated by a newer proposal, then merged."""
    head = push(forge, worktree)
    first = forge.ensure_merge_request(params())
    assert first.created and (first.ref, first.state, first.head_commit) == ("1", "open", head)
    assert first.url.endswith(f"/{REPO}/pull/1") and first.proposal_key == "k1"
    again = forge.ensure_merge_request(params())
    assert not again.created and again.ref == "1"
    newer = forge.ensure_merge_request(params("k2", title="Upgrade pandas and numpy"))
    assert (newer.ref, newer.proposal_key, newer.title) == ("1", "k2", "Upgrade pandas and numpy")
    assert len(server.pulls[REPO]) == 1
    assert forge.open_merge_request(REPO, EVERGREEN_BRANCH) == newer
    server.review(REPO, 1, "olivia")
    assert forge.merge_request(REPO, "1").approvals == ("olivia",)
    server.merge(REPO, 1)
    assert forge.merge_request(REPO, "1").state == "merged"
    assert forge.open_merge_request(REPO, EVERGREEN_BRANCH) is None


def test_a_closed_pull_request_is_closed_not_merged(forge, server, worktree):
    """Closing without merging shows as closed; an unknown number is MergeRequestNotFound."""
    push(forge, worktree)
    forge.ensure_merge_request(params())
    server.close(REPO, 1)
    assert forge.merge_request(REPO, "1").state == "closed"
    with pytest.raises(MergeRequestNotFound):
        forge.merge_request(REPO, "7")


def test_an_unchanged_ensure_writes_nothing(forge, server, worktree):
    """Ensuring the same pull request again only reads."""
    push(forge, worktree)
    forge.ensure_merge_request(params())
    start = len(server.log)
    forge.ensure_merge_request(params())
    assert [r.method for r in server.log[start:] if r.method != "GET"] == []


def test_draft_until_verified_then_ready_through_graphql(forge, server, worktree):
    """A draft is created as a GitHub draft; publishing it verified marks it ready."""
    push(forge, worktree)
    draft = forge.ensure_merge_request(params(draft=True))
    assert draft.draft and server.pulls[REPO][0]["draft"] is True
    ready = forge.ensure_merge_request(params())
    assert not ready.draft and server.pulls[REPO][0]["draft"] is False
    mutations = [r.body for r in server.log if r.url == "/api/graphql"]
    assert len(mutations) == 1 and "markPullRequestReadyForReview" in mutations[0]


def test_owners_become_reviewers_and_assignees_with_labels(forge, server, worktree):
    """Owners' e-mail addresses are found as logins, requested once; labels are set."""
    push(forge, worktree)
    state = forge.ensure_merge_request(params())
    forge.ensure_merge_request(params())
    pull = server.pulls[REPO][0]
    assert pull["requested"] == ["olivia", "ravi"] and pull["assignees"] == ["olivia"]
    assert set(state.labels) == {"specfleet", "dependencies"}
    asks = [r for r in server.log if r.url.endswith("/requested_reviewers")]
    assert len(asks) == 1


def test_unknown_owners_are_named_in_one_comment(forge, server, worktree):
    """An owner without a findable GitHub account is not requested; a comment says so, once."""
    push(forge, worktree)
    owners = ("olivia@example.com", "ghost@example.com")
    forge.ensure_merge_request(params(reviewers=owners))
    forge.ensure_merge_request(params(reviewers=owners))
    comments = server.comments[(REPO, 1)]
    assert len(comments) == 1 and "ghost@example.com" in comments[0]["body"]
    assert server.pulls[REPO][0]["requested"] == ["olivia"]


def test_comments_are_added_once_per_key(forge, server, worktree):
    """A comment is found again by its hidden marker and not repeated."""
    push(forge, worktree)
    state = forge.ensure_merge_request(params(reviewers=()))
    forge.ensure_note(REPO, state.ref, "verdict:k1", "Verified: all checks pass")
    forge.ensure_note(REPO, state.ref, "verdict:k1", "Verified: all checks pass")
    forge.ensure_note(REPO, state.ref, "verdict:k2", "Verified again")
    bodies = [comment["body"] for comment in server.comments[(REPO, 1)]]
    assert len(bodies) == 2 and "<!-- specfleet:note:verdict:k1 -->" in bodies[0]


def test_a_comment_whose_answer_was_lost_is_not_repeated(forge, server, worktree):
    """A comment created but answered 502 is found by its marker instead of posted again."""
    push(forge, worktree)
    state = forge.ensure_merge_request(params(reviewers=()))
    server.fail_next(1, status=502, after_processing=True, method="POST")
    forge.ensure_note(REPO, state.ref, "verdict:k1", "Verified")
    assert len(server.comments[(REPO, 1)]) == 1


def test_no_duplicate_after_a_502_mid_create(forge, server, worktree):
    """A create that succeeded but answered 502 is retried, answered 422, found and kept."""
    push(forge, worktree)
    server.fail_next(1, status=502, after_processing=True, method="POST")
    state = forge.ensure_merge_request(params())
    assert state.ref == "1" and state.proposal_key == "k1" and not state.created
    assert len(server.pulls[REPO]) == 1 and pull_creates(server) == 2


def test_a_secondary_rate_limit_is_waited_out(forge, server, worktree):
    """403 with Retry-After (GitHub's secondary rate limit) is waited out and retried once."""
    push(forge, worktree)
    start = len(server.log)
    server.fail_next(1, status=403, retry_after=1, method="POST")
    state = forge.ensure_merge_request(params())
    assert state.created and len(server.pulls[REPO]) == 1
    assert pull_creates(server, start) == 2


def test_a_rate_limit_longer_than_the_bound_is_a_transient_error(server, worktree):
    """A Retry-After beyond max_wait_seconds is not slept through: the task retries later."""
    forge = GitHubForge(server.api_url, TOKEN, max_retries=3, max_wait_seconds=5)
    push(forge, worktree)
    server.fail_next(1, status=429, retry_after=3600, method="POST")
    with pytest.raises(ForgeTransientError, match="rate limited, retry in 3600 s"):
        forge.ensure_merge_request(params())
    assert server.pulls[REPO] == []


def test_persistent_5xx_becomes_a_transient_error(forge, server, worktree):
    """After max_retries failures the error is ForgeTransientError for the task to retry."""
    push(forge, worktree)
    server.fail_next(10, status=503)
    with pytest.raises(ForgeTransientError, match="503"):
        forge.ensure_merge_request(params())
    server.faults.clear()
    assert forge.open_merge_request(REPO, EVERGREEN_BRANCH) is None


def test_bad_token_and_bad_project_are_clear_errors(server):
    """A refused token is a ForgeError without the token; a project not OWNER/NAME is refused."""
    wrong = "ghp_WrongTokenWrongTokenWrongToken0123456"
    forge = GitHubForge(server.api_url, wrong, max_retries=1)
    with pytest.raises(ForgeError) as caught:
        forge.open_merge_request(REPO, EVERGREEN_BRANCH)
    assert "401" in str(caught.value) and "WrongToken" not in str(caught.value)
    with pytest.raises(InputError, match="OWNER/NAME"):
        forge.open_merge_request("../etc", EVERGREEN_BRANCH)
    with pytest.raises(InputError, match="SPECFLEET_GITHUB_TOKEN"):
        GitHubForge(server.api_url, "")


def test_token_is_never_in_urls_bodies_comments_or_logs(forge, server, worktree, capsys, tmp_path):
    """The token travels only in headers: never in a URL, body, pull request, comment or log."""
    configure_logging(Settings(home=tmp_path, log_format="json", github_token=TOKEN))
    push(forge, worktree)
    state = forge.ensure_merge_request(params(description=f"token is {TOKEN} oops"))
    forge.ensure_note(REPO, state.ref, "k", f"and again {TOKEN}")
    structlog.get_logger().info("published", forge=repr(forge), url=state.url)
    for request in server.log:
        assert TOKEN not in request.url and TOKEN not in request.body
        if request.url.startswith("/api/"):
            assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in json.dumps([server.pulls, list(server.comments.values())])
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_retry_plan_follows_githubs_rate_limit_headers():
    """Retry-After wins; remaining 0 waits for the reset; a plain 403 is a permission error."""
    plan = plan_retry(403, {"retry-after": "7"}, 0, 3, 60, now=1000)
    assert (plan.retry, plan.wait_seconds, plan.kind) == (True, 7, "rate-limited")
    reset = plan_retry(
        403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}, 0, 3, 60, 1000
    )
    assert reset.retry and reset.wait_seconds == 31
    assert not plan_retry(403, {}, 0, 3, 60, 1000).retry
    assert not plan_retry(429, {"retry-after": "120"}, 0, 3, 60, 1000).retry
    assert not plan_retry(502, {}, 3, 3, 60, 1000).retry
    assert plan_retry(None, {}, 0, 3, 60, 1000).kind == "timeout"


def test_approvals_are_the_latest_deciding_review_per_person():
    """A change request after an approval withdraws it; comments do not count."""
    reviews = [
        {"user": {"login": "olivia"}, "state": "APPROVED"},
        {"user": {"login": "ravi"}, "state": "APPROVED"},
        {"user": {"login": "ravi"}, "state": "CHANGES_REQUESTED"},
        {"user": {"login": "olivia"}, "state": "COMMENTED"},
    ]
    assert approvers(reviews) == ("olivia",)


def test_a_github_product_is_tracked_to_merged_through_the_forge_factory(
    server, worktree, engine, tmp_path
):
    """forge_for picks the GitHub forge for a github product; tracking records the merge."""
    from sqlmodel import select

    from specfleet.core.db import MergeRequest, Product, session_scope
    from specfleet.core.errors import ConfigurationError
    from specfleet.core.forges import forge_for
    from specfleet.scheduler.tracking import track_merge_requests

    settings = Settings(home=tmp_path, github_url=server.api_url, github_token=TOKEN)
    product = Product(id="orders", name="Orders", repo_url="/r", forge="github", forge_project=REPO)
    forge = forge_for(settings, product, engine)
    assert isinstance(forge, GitHubForge) and forge.url == server.api_url
    with pytest.raises(ConfigurationError, match="SPECFLEET_GITHUB_TOKEN"):
        forge_for(Settings(home=tmp_path), product, engine)
    push(forge, worktree)
    state = forge.ensure_merge_request(params())
    with session_scope(engine) as session:
        session.add(product)
        session.flush()
        session.add(
            MergeRequest(product_id="orders", forge="github", forge_ref=state.ref, title="x")
        )
    server.merge(REPO, int(state.ref))
    report = track_merge_requests(engine, lambda p: forge_for(settings, p, engine))
    assert report.merged and report.checked == 1
    with session_scope(engine) as session:
        assert session.exec(select(MergeRequest.state)).all() == ["merged"]


def test_an_owner_github_refuses_as_reviewer_is_named_not_fatal(forge, server, worktree):
    """A 422 on requesting a reviewer (no access) leaves the pull request open and says so."""
    server.add_user("outsider", "out@example.com")
    push(forge, worktree)
    original = server._on_pull

    def refuse_outsider(full_name, pull, kind, tail, method, body):  # type: ignore[no-untyped-def]
        if tail == ["requested_reviewers"] and "outsider" in body.get("reviewers", []):
            return 422, {
                "message": "Validation Failed",
                "errors": [{"message": "not a collaborator"}],
            }
        return original(full_name, pull, kind, tail, method, body)

    server._on_pull = refuse_outsider  # type: ignore[method-assign]
    state = forge.ensure_merge_request(params(reviewers=("out@example.com",)))
    assert state.state == "open" and len(server.pulls[REPO]) == 1
    (comment,) = server.comments[(REPO, 1)]
    assert "out@example.com" in comment["body"] and "could not be requested" in comment["body"]
