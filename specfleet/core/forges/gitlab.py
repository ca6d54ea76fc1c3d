"""GitLab as a forge, through python-gitlab (REST v4) for merge requests and git for branches.

Repeatability comes from GitLab itself: it keeps one open merge request per source branch
(a second create answers 409), so ``ensure_merge_request`` lists the open one first and, when
a create collides with one a lost response already made, finds and updates it. python-gitlab
retries 429 (sleeping for ``Retry-After``) and 5xx with backoff; what is still failing after
``max_retries`` becomes :class:`ForgeTransientError` for the task's own retry.

The token travels only in the ``PRIVATE-TOKEN`` header of API requests and in an
``Authorization`` header given to git through ``GIT_CONFIG_*`` variables: never in a URL, a
message, a merge-request description or a log line.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabAuthenticationError, GitlabError, GitlabHttpError
from gitlab.v4.objects import Project, ProjectMergeRequest
from pydantic import SecretStr

from specfleet.core.errors import ForgeError, ForgeTransientError, InputError, MergeRequestNotFound
from specfleet.core.forges.interface import (
    BranchPush,
    MergeRequestParams,
    MergeRequestState,
    MergeRequestStateName,
)
from specfleet.core.git import GIT_ENV
from specfleet.core.metrics import count_forge_error
from specfleet.core.secrets import redact_text

DRAFT_PREFIX = "Draft: "
_DRAFT_PATTERN = re.compile(r"^\s*(?:\[draft\]|\(draft\)|draft:|draft\s*-)\s*", re.IGNORECASE)
_PROPOSAL_MARKER = re.compile(r"<!-- specfleet:proposal:([A-Za-z0-9_.:\-]{1,64}) -->")
_NOTE_KEY = re.compile(r"[^A-Za-z0-9_.:\-]")
_STATES: dict[str, MergeRequestStateName] = {
    "opened": "open",
    "locked": "open",
    "merged": "merged",
    "closed": "closed",
}
T = TypeVar("T")


def note_marker(key: str) -> str:
    """The hidden line that identifies a note written for ``key``."""
    return f"<!-- specfleet:note:{_NOTE_KEY.sub('_', key)[:120]} -->"


def proposal_marker(key: str) -> str:
    """The hidden line that carries the proposal key in a merge request's description."""
    return f"<!-- specfleet:proposal:{_NOTE_KEY.sub('_', key)[:64]} -->"


class GitLabForge:
    """Projects and merge requests on a GitLab server."""

    name = "gitlab"

    def __init__(
        self,
        url: str,
        token: str | SecretStr,
        max_retries: int = 5,
        timeout_seconds: float = 30,
        git_timeout_seconds: int = 120,
        session: requests.Session | None = None,
    ) -> None:
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not secret:
            raise InputError("the GitLab forge needs a token (SPECFLEET_GITLAB_TOKEN)")
        self.url = url.rstrip("/")
        self._token = secret
        self.git_timeout_seconds = git_timeout_seconds
        self.client = gitlab.Gitlab(
            self.url,
            private_token=secret,
            timeout=timeout_seconds,
            retry_transient_errors=True,
            session=session,
        )
        self.max_retries = max_retries
        self._user_ids: dict[str, int | None] = {}

    # -- branches ----------------------------------------------------------------------------

    def ensure_branch(self, push: BranchPush) -> str:
        """Force-push ``push.commit`` from ``push.source`` to the project's branch."""
        project = self._call(lambda: self.client.projects.get(push.project, **self._opts()))
        remote = str(project.http_url_to_repo)
        if re.match(r"^[a-z]+://[^/]*@", remote):
            raise ForgeError(f"{push.project}: the repository URL carries credentials")
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
            message = self._redact(result.stderr.decode("utf-8", "replace").strip()[-500:])
            raise ForgeError(f"cannot push {push.branch} to {push.project}: {message}")
        return push.commit

    def _git_env(self) -> dict[str, str]:
        # http.extraHeader through the environment: not in the URL, not in any config file,
        # not on the command line (where ps would show it)
        basic = base64.b64encode(f"oauth2:{self._token}".encode()).decode()
        return {
            **os.environ,
            **GIT_ENV,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    # -- merge requests ----------------------------------------------------------------------

    def ensure_merge_request(self, params: MergeRequestParams) -> MergeRequestState:
        """The one open merge request from ``params.source_branch``, created or updated."""
        project = self._project(params.project)
        assignees, unknown_assignees = self._user_ids_for(params.assignees)
        reviewers, unknown_reviewers = self._user_ids_for(params.reviewers)
        title = (DRAFT_PREFIX if params.draft else "") + _DRAFT_PATTERN.sub("", params.title)
        description = (
            self._redact(params.description).rstrip()
            + "\n\n"
            + proposal_marker(params.proposal_key)
        )
        desired: dict[str, Any] = {
            "title": title,
            "description": description,
            "target_branch": params.target_branch,
            "labels": ",".join(params.labels),
            "assignee_ids": assignees,
            "reviewer_ids": reviewers,
        }
        created = False
        current = self._open(project, params.source_branch)
        if current is None:
            try:
                current = self._call(
                    lambda: project.mergerequests.create(
                        {"source_branch": params.source_branch, **desired}, **self._opts()
                    )
                )
                created = True
            except ForgeError as error:
                # 409: GitLab already has an open merge request from this branch, e.g. one a
                # create whose answer was lost made; it is found and updated below
                if not _is_conflict(error):
                    raise
                current = self._open(project, params.source_branch)
                if current is None:
                    raise
        if not created:
            changes = _changes(current, desired)
            if changes:
                iid = current.iid
                self._call(lambda: project.mergerequests.update(iid, changes, **self._opts()))
                current = self._call(lambda: project.mergerequests.get(iid, **self._opts()))
        state = self._state(params.project, current, created=created)
        unknown = sorted(set(unknown_assignees) | set(unknown_reviewers))
        if unknown:
            self.ensure_note(
                params.project,
                state.ref,
                "owners-unknown:" + ",".join(unknown),
                "These owners from the spec have no GitLab account here and were not assigned: "
                + ", ".join(unknown),
            )
        return state

    def ensure_note(self, project: str, ref: str, key: str, body: str) -> None:
        """A comment on the merge request, added once per ``key`` (found by a hidden marker)."""
        request = self._merge_request(self._project(project), ref)
        marker = note_marker(key)
        notes = self._call(lambda: request.notes.list(get_all=True, **self._opts()))
        if any(marker in str(getattr(note, "body", "")) for note in notes):
            return
        text = self._redact(body).rstrip() + "\n\n" + marker
        self._call(lambda: request.notes.create({"body": text}, **self._opts()))

    def merge_request(self, project: str, ref: str) -> MergeRequestState:
        """The merge request's state, with who approved it."""
        request = self._merge_request(self._project(project), ref)
        approval = self._call(lambda: request.approvals.get(**self._opts()))
        approvers = tuple(
            str(entry.get("user", {}).get("username", ""))
            for entry in getattr(approval, "approved_by", []) or []
        )
        return self._state(project, request, approvals=approvers)

    def open_merge_request(self, project: str, source_branch: str) -> MergeRequestState | None:
        current = self._open(self._project(project), source_branch)
        return self._state(project, current) if current is not None else None

    # -- internals ---------------------------------------------------------------------------

    def _opts(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "obey_rate_limit": True}

    def _project(self, project: str) -> Project:
        # lazy: no request; the first call on the project answers 404 if it does not exist
        return self.client.projects.get(project, lazy=True)

    def _open(self, project: Project, source_branch: str) -> ProjectMergeRequest | None:
        found = self._call(
            lambda: project.mergerequests.list(
                source_branch=source_branch, state="opened", get_all=True, **self._opts()
            )
        )
        candidates = sorted(found, key=lambda request: int(request.iid))
        return candidates[0] if candidates else None

    def _merge_request(self, project: Project, ref: str) -> ProjectMergeRequest:
        if not ref.isdigit():
            raise MergeRequestNotFound(f"{ref!r} is not a GitLab merge request iid")
        try:
            return self._call(lambda: project.mergerequests.get(int(ref), **self._opts()))
        except ForgeError as error:
            if isinstance(error.__cause__, GitlabError) and error.__cause__.response_code == 404:
                raise MergeRequestNotFound(
                    f"no merge request !{ref} in GitLab project {project.get_id()}"
                ) from error
            raise

    def _user_ids_for(self, emails: Sequence[str]) -> tuple[list[int], list[str]]:
        """GitLab user ids for owners' e-mail addresses; the unknown ones are returned apart."""
        ids: list[int] = []
        unknown: list[str] = []
        for email in emails:
            if email not in self._user_ids:
                self._user_ids[email] = self._find_user(email)
            found = self._user_ids[email]
            if found is None:
                unknown.append(email)
            elif found not in ids:
                ids.append(found)
        return ids, unknown

    def _find_user(self, email: str) -> int | None:
        users = self._call(
            lambda: self.client.users.list(search=email, get_all=True, **self._opts())
        )
        wanted = email.casefold()
        for user in users:
            emails = {
                str(getattr(user, name, "") or "").casefold()
                for name in ("email", "public_email", "commit_email")
            }
            if wanted in emails:
                return int(user.id)
        # GitLab searches e-mail addresses exactly and hides private ones from non-admins: a
        # single answer to an e-mail search is that person
        return int(users[0].id) if len(users) == 1 else None

    def _state(
        self,
        project: str,
        request: ProjectMergeRequest,
        created: bool = False,
        approvals: tuple[str, ...] = (),
    ) -> MergeRequestState:
        attributes = request.attributes
        title = str(attributes.get("title", ""))
        draft = bool(attributes.get("draft", attributes.get("work_in_progress", False)))
        marker = _PROPOSAL_MARKER.search(str(attributes.get("description") or ""))
        return MergeRequestState(
            forge=self.name,
            project=project,
            ref=str(attributes["iid"]),
            url=str(attributes.get("web_url", "")),
            state=_STATES.get(str(attributes.get("state")), "closed"),
            title=_DRAFT_PATTERN.sub("", title) if draft else title,
            draft=draft,
            head_commit=attributes.get("sha"),
            proposal_key=marker.group(1) if marker else None,
            approvals=approvals,
            labels=tuple(attributes.get("labels") or ()),
            created=created,
        )

    def _call(self, operation: Callable[[], T]) -> T:
        """Run one python-gitlab call; library errors become specfleet's forge errors."""
        try:
            return operation()
        except GitlabAuthenticationError as error:
            count_forge_error("gitlab", "auth")
            raise ForgeError(f"GitLab at {self.url} refused the token (401)") from error
        except GitlabError as error:
            code = error.response_code
            message = self._redact(str(error.error_message))[:500]
            if code is not None and (code == 429 or code >= 500):
                count_forge_error("gitlab", "rate-limited" if code == 429 else "server")
                raise ForgeTransientError(
                    f"GitLab at {self.url} answered {code} after {self.max_retries} retries: "
                    f"{message}"
                ) from error
            count_forge_error("gitlab", "other")
            raise ForgeError(f"GitLab at {self.url} answered {code}: {message}") from error
        except requests.RequestException as error:
            count_forge_error("gitlab", "timeout")
            # connection refused, reset or timed out after python-gitlab's own retries
            raise ForgeTransientError(
                f"GitLab at {self.url} cannot be reached: {type(error).__name__}"
            ) from error

    def _redact(self, text: str) -> str:
        return redact_text(text, (self._token,))


def _is_conflict(error: ForgeError) -> bool:
    cause = error.__cause__
    return isinstance(cause, GitlabHttpError | GitlabError) and cause.response_code == 409


def _changes(request: ProjectMergeRequest, desired: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``desired`` that differ from the merge request as GitLab shows it."""
    attributes = request.attributes
    current = {
        "title": attributes.get("title"),
        "description": attributes.get("description") or "",
        "target_branch": attributes.get("target_branch"),
        "labels": ",".join(sorted(attributes.get("labels") or ())),
        "assignee_ids": sorted(_ids(attributes.get("assignees"))),
        "reviewer_ids": sorted(_ids(attributes.get("reviewers"))),
    }
    wanted = {
        **desired,
        "labels": ",".join(sorted(filter(None, str(desired["labels"]).split(",")))),
        "assignee_ids": sorted(desired["assignee_ids"]),
        "reviewer_ids": sorted(desired["reviewer_ids"]),
    }
    return {name: desired[name] for name in desired if current[name] != wanted[name]}


def _ids(users: Iterable[dict[str, Any]] | None) -> list[int]:
    return [int(user["id"]) for user in users or () if "id" in user]


__all__ = ["GitLabForge", "note_marker", "proposal_marker"]
