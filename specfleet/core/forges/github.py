"""GitHub (github.com or GitHub Enterprise Server) as a forge: REST over httpx, git for branches.

Repeatability comes from GitHub itself: it keeps one open pull request per head branch (a
second create answers 422 "A pull request already exists"), so ``ensure_pull_request`` lists
the open one first and, when a create collides with one a lost response already made, finds
and updates it. REST cannot turn a draft into a ready pull request; that one step uses the
GraphQL mutations ``markPullRequestReadyForReview`` / ``convertPullRequestToDraft``.

Owners in specs are e-mail addresses; GitHub reviewers are logins. An owner is found by
GitHub's user search on a public e-mail address; one without a findable account is named in
a single comment instead of being requested.

The token travels only in the ``Authorization`` header of API requests and in an
``Authorization`` header given to git through ``GIT_CONFIG_*`` variables: never in a URL, a
message, a pull-request body or a log line.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import SecretStr

from specfleet.core.errors import ForgeError, InputError, MergeRequestNotFound
from specfleet.core.forges.github_http import GitHubAPI, GitHubRefused
from specfleet.core.forges.gitlab import note_marker, proposal_marker
from specfleet.core.forges.interface import (
    BranchPush,
    MergeRequestParams,
    MergeRequestState,
    MergeRequestStateName,
)
from specfleet.core.git import GIT_ENV

DEFAULT_URL = "https://api.github.com"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}/[A-Za-z0-9_.\-]{1,100}$")
_PROPOSAL_MARKER = re.compile(r"<!-- specfleet:proposal:([A-Za-z0-9_.:\-]{1,64}) -->")
_READY = "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { clientMutationId } }"  # noqa: E501
_TO_DRAFT = "mutation($id: ID!) { convertPullRequestToDraft(input: {pullRequestId: $id}) { clientMutationId } }"  # noqa: E501


def repository_path(project: str) -> str:
    """``/repos/OWNER/NAME`` for a project given as OWNER/NAME; anything else is refused."""
    if not _REPOSITORY.match(project) or ".." in project:
        raise InputError(f"GitHub project {project!r} is not OWNER/NAME")
    return f"/repos/{project}"


def clone_url_for(api_url: str, project: str) -> str:
    """The HTTPS clone URL of OWNER/NAME on the GitHub whose API is at ``api_url``.

    api.github.com clones from github.com; GitHub Enterprise Server serves its API at
    HOST/api/v3 and its repositories at HOST/OWNER/NAME.git.
    """
    repository_path(project)  # refuses anything but OWNER/NAME
    base = api_url.rstrip("/")
    if base == DEFAULT_URL:
        base = "https://github.com"
    elif base.endswith("/api/v3"):
        base = base[: -len("/api/v3")]
    return f"{base}/{project}.git"


def pull_request_state(pull: dict[str, Any]) -> MergeRequestStateName:
    """GitHub says closed for both; a merge time tells a merged pull request apart."""
    if pull.get("merged_at") or pull.get("merged"):
        return "merged"
    return "open" if pull.get("state") == "open" else "closed"


def approvers(reviews: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """Logins whose latest deciding review approves (a later change request withdraws it)."""
    latest: dict[str, str] = {}
    for review in reviews:
        login = str((review.get("user") or {}).get("login") or "")
        state = str(review.get("state") or "")
        if login and state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[login] = state
    return tuple(sorted(login for login, state in latest.items() if state == "APPROVED"))


class GitHubForge:
    """Repositories and pull requests on GitHub."""

    name = "github"

    def __init__(
        self,
        url: str,
        token: str | SecretStr,
        max_retries: int = 5,
        timeout_seconds: float = 30,
        max_wait_seconds: float = 60,
        git_timeout_seconds: int = 120,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not secret:
            raise InputError("the GitHub forge needs a token (SPECFLEET_GITHUB_TOKEN)")
        self._token = secret
        self.api = GitHubAPI(url, secret, max_retries, timeout_seconds, max_wait_seconds)
        self.url = self.api.url
        self.git_timeout_seconds = git_timeout_seconds
        self._logins: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"GitHubForge({self.url!r})"

    # -- repositories and branches -----------------------------------------------------------

    def clone_url(self, project: str) -> str:
        """The repository's HTTPS clone URL as GitHub reports it."""
        repository = self.api.request("GET", repository_path(project))
        remote = str(repository.get("clone_url") or "")
        if not remote or re.match(r"^[a-z]+://[^/]*@", remote):
            raise ForgeError(f"{project}: GitHub gives no usable clone URL")
        return remote

    def ensure_branch(self, push: BranchPush) -> str:
        """Force-push ``push.commit`` from ``push.source`` to the repository's branch."""
        remote = self.clone_url(push.project)
        result = subprocess.run(
            [
                "git",
                "-c",
                "core.hooksPath=/dev/null",
                "-C",
                str(push.source),
                "push",
                "--quiet",
                "--no-verify",
                "--force",
                remote,
                f"{push.commit}:refs/heads/{push.branch}",
            ],
            capture_output=True,
            env=self._git_env(),
            timeout=self.git_timeout_seconds,
            check=False,
        )
        if result.returncode != 0:
            message = self.api.redact(result.stderr.decode("utf-8", "replace").strip()[-500:])
            raise ForgeError(f"cannot push {push.branch} to {push.project}: {message}")
        return push.commit

    def _git_env(self) -> dict[str, str]:
        # GitHub's git-over-HTTPS rule for tokens: Basic auth as x-access-token; given as a
        # header through the environment, never in the URL, a config file or the command line
        basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
        return {
            **os.environ,
            **GIT_ENV,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    # -- pull requests -----------------------------------------------------------------------

    def ensure_merge_request(self, params: MergeRequestParams) -> MergeRequestState:
        """The one open pull request from ``params.source_branch``, created or updated."""
        base = repository_path(params.project)
        body = self.api.redact(params.description).rstrip()
        body += "\n\n" + proposal_marker(params.proposal_key)
        desired = {"title": params.title, "body": body, "base": params.target_branch}
        pull = self._open(params.project, params.source_branch)
        created = False
        if pull is None:
            pull, created = self._create(params, desired)
        else:
            changes = {
                name: value for name, value in desired.items() if _field(pull, name) != value
            }
            if changes:
                pull = self.api.request("PATCH", f"{base}/pulls/{pull['number']}", json=changes)
        number = int(pull["number"])
        if bool(pull.get("draft")) != params.draft:
            mutation = _TO_DRAFT if params.draft else _READY
            self._graphql(mutation, {"id": pull["node_id"]})
        self._ensure_labels(base, number, pull, params.labels)
        unknown = self._ensure_people(base, number, pull, params)
        state = self._state(params.project, self.api.request("GET", f"{base}/pulls/{number}"))
        if unknown:
            self.ensure_note(
                params.project,
                state.ref,
                "owners-unknown:" + ",".join(unknown),
                "These owners from the spec could not be requested as reviewers (no GitHub "
                "account with that public e-mail address, or no access to this repository): "
                + ", ".join(unknown),
            )
        return MergeRequestState(**{**state.__dict__, "created": created})

    def _create(
        self, params: MergeRequestParams, desired: dict[str, str]
    ) -> tuple[dict[str, Any], bool]:
        base = repository_path(params.project)
        try:
            # a 5xx is retried: if the first try did create it, the retry answers 422 below
            pull = self.api.request(
                "POST",
                f"{base}/pulls",
                json={**desired, "head": params.source_branch, "draft": params.draft},
            )
            return dict(pull), True
        except GitHubRefused as error:
            if error.status != 422:
                raise
            # "A pull request already exists for OWNER:branch": one a lost answer created
            found = self._open(params.project, params.source_branch)
            if found is None:
                raise
            changes = {
                name: value for name, value in desired.items() if _field(found, name) != value
            }
            if changes:
                found = self.api.request("PATCH", f"{base}/pulls/{found['number']}", json=changes)
            return dict(found), False

    def _ensure_labels(
        self, base: str, number: int, pull: dict[str, Any], labels: Sequence[str]
    ) -> None:
        current = {str(label.get("name")) for label in pull.get("labels") or ()}
        if current != set(labels):
            self.api.request("PUT", f"{base}/issues/{number}/labels", json={"labels": list(labels)})

    def _ensure_people(
        self, base: str, number: int, pull: dict[str, Any], params: MergeRequestParams
    ) -> list[str]:
        """Request reviewers and add assignees who are not there yet; returns unknown owners."""
        reviewers, unknown_reviewers = self._logins_for(params.reviewers)
        assignees, unknown_assignees = self._logins_for(params.assignees)
        if reviewers:
            asked = {str(user.get("login")) for user in pull.get("requested_reviewers") or ()}
            reviewed = {
                str((review.get("user") or {}).get("login"))
                for review in self.api.paginate(f"{base}/pulls/{number}/reviews")
            }
            missing = [login for login in reviewers if login not in asked | reviewed]
            if missing:
                try:
                    self.api.request(
                        "POST",
                        f"{base}/pulls/{number}/requested_reviewers",
                        json={"reviewers": missing},
                    )
                except GitHubRefused as error:
                    # 422: not a collaborator, or the pull request's own author; the pull
                    # request stands, and the comment below names whom it could not ask
                    if error.status != 422:
                        raise
                    unknown_reviewers += [self._email_of(login) for login in missing]
        present = {str(user.get("login")) for user in pull.get("assignees") or ()}
        missing_assignees = [login for login in assignees if login not in present]
        if missing_assignees:
            self.api.request(
                "POST", f"{base}/issues/{number}/assignees", json={"assignees": missing_assignees}
            )
        return sorted(set(unknown_reviewers) | set(unknown_assignees))

    def ensure_note(self, project: str, ref: str, key: str, body: str) -> None:
        """A comment on the pull request, added once per ``key`` (found by a hidden marker)."""
        path = f"{repository_path(project)}/issues/{_number(ref)}/comments"
        marker = note_marker(key)
        if self._has_comment(path, marker):
            return
        text = self.api.redact(body).rstrip() + "\n\n" + marker
        try:
            # not retried blindly on 5xx: the comment may exist though the answer was lost
            self.api.request("POST", path, json={"body": text}, retry_server_errors=False)
        except ForgeError:
            if self._has_comment(path, marker):
                return
            self.api.request("POST", path, json={"body": text}, retry_server_errors=False)

    def _has_comment(self, path: str, marker: str) -> bool:
        return any(marker in str(comment.get("body") or "") for comment in self.api.paginate(path))

    def merge_request(self, project: str, ref: str) -> MergeRequestState:
        """The pull request's state, with who approved it."""
        base = repository_path(project)
        number = _number(ref)
        try:
            pull = self.api.request("GET", f"{base}/pulls/{number}")
        except GitHubRefused as error:
            if error.status == 404:
                raise MergeRequestNotFound(f"no pull request #{number} in {project}") from error
            raise
        reviews = self.api.paginate(f"{base}/pulls/{number}/reviews")
        return self._state(project, pull, approvals=approvers(reviews))

    def open_merge_request(self, project: str, source_branch: str) -> MergeRequestState | None:
        pull = self._open(project, source_branch)
        return self._state(project, pull) if pull is not None else None

    # -- internals ---------------------------------------------------------------------------

    def _open(self, project: str, source_branch: str) -> dict[str, Any] | None:
        owner = project.split("/", 1)[0]
        found = self.api.paginate(
            f"{repository_path(project)}/pulls",
            {"state": "open", "head": f"{owner}:{source_branch}"},
        )
        candidates = sorted(found, key=lambda pull: int(pull["number"]))
        return dict(candidates[0]) if candidates else None

    def _graphql(self, query: str, variables: dict[str, Any]) -> None:
        answer = self.api.request(
            "POST", self.api.graphql_url, json={"query": query, "variables": variables}
        )
        errors = (answer or {}).get("errors")
        if errors:
            message = "; ".join(str(error.get("message", "")) for error in errors)
            raise ForgeError(
                f"GitHub GraphQL at {self.url} refused: {self.api.redact(message)[:300]}"
            )

    def _logins_for(self, emails: Sequence[str]) -> tuple[list[str], list[str]]:
        """GitHub logins for owners' e-mail addresses; the unknown ones are returned apart."""
        logins: list[str] = []
        unknown: list[str] = []
        for email in emails:
            if email not in self._logins:
                self._logins[email] = self._find_login(email)
            login = self._logins[email]
            if login is None:
                unknown.append(email)
            elif login not in logins:
                logins.append(login)
        return logins, unknown

    def _email_of(self, login: str) -> str:
        return next((email for email, known in self._logins.items() if known == login), login)

    def _find_login(self, email: str) -> str | None:
        found = self.api.request("GET", "/search/users", params={"q": f"{email} in:email"})
        items = (found or {}).get("items") or []
        # the search matches public addresses exactly: a single answer is that person
        return str(items[0]["login"]) if len(items) == 1 else None

    def _state(
        self, project: str, pull: dict[str, Any], approvals: tuple[str, ...] = ()
    ) -> MergeRequestState:
        marker = _PROPOSAL_MARKER.search(str(pull.get("body") or ""))
        return MergeRequestState(
            forge=self.name,
            project=project,
            ref=str(pull["number"]),
            url=str(pull.get("html_url", "")),
            state=pull_request_state(pull),
            title=str(pull.get("title", "")),
            draft=bool(pull.get("draft")),
            head_commit=(pull.get("head") or {}).get("sha"),
            proposal_key=marker.group(1) if marker else None,
            approvals=approvals,
            labels=tuple(str(label.get("name")) for label in pull.get("labels") or ()),
        )


def _field(pull: dict[str, Any], name: str) -> Any:
    if name == "base":
        return (pull.get("base") or {}).get("ref")
    return pull.get(name) or ("" if name == "body" else None)


def _number(ref: str) -> int:
    if not ref.isdigit():
        raise MergeRequestNotFound(f"{ref!r} is not a GitHub pull request number")
    return int(ref)


__all__ = [
    "DEFAULT_URL",
    "GitHubForge",
    "approvers",
    "clone_url_for",
    "pull_request_state",
    "repository_path",
]
