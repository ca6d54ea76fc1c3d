"""A GitLab server speaking REST v4 JSON over real HTTP, for the endpoints specfleet uses.

python-gitlab talks to it exactly as to gitlab.com: the ``PRIVATE-TOKEN`` header, URL-encoded
project paths, JSON bodies, 201 on create, GitLab's 409 for a second open merge request from
one source branch, and its documented fields (``iid``, ``draft``, ``sha``, ``web_url``,
``approved_by``...). A project's git remote (``http_url_to_repo``) is served over smart HTTP
by ``git http-backend`` behind GitLab's rule (HTTP Basic with the token as password), so a
branch push is a real authenticated push. A fault injector answers the next API requests with
500 or with 429 and ``Retry-After``, before or after doing the work; every request is logged.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    url: str  # path and query, as sent
    headers: dict[str, str]
    body: str


@dataclass
class Fault:
    status: int
    retry_after: int | None = None
    after_processing: bool = False  # do the work, then answer the error (a lost response)
    method: str | None = None  # only requests with this method


@dataclass
class FakeGitLab:
    """The server's state: projects, users, merge requests, notes, approvals, faults, log."""

    root: Path
    token: str
    base_url: str = ""
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    merge_requests: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    notes: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    approvals: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- set-up and scripted behaviour (what a GitLab user would do in the browser) ---------

    def add_project(self, path_with_namespace: str, source: Path | None = None) -> dict[str, Any]:
        """A project whose git remote is a bare repository (cloned from ``source`` if given)."""
        project_id = len(self.projects) + 1
        bare = self.root / f"{path_with_namespace}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(source), str(bare)], check=True
            )
        else:
            subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
        namespace, _, name = path_with_namespace.rpartition("/")
        project = {
            "id": project_id,
            "name": name,
            "path": name,
            "path_with_namespace": path_with_namespace,
            "namespace": {"id": 1, "name": namespace, "path": namespace, "kind": "group"},
            "default_branch": "main",
            "http_url_to_repo": f"{self.base_url}/{path_with_namespace}.git",
            "ssh_url_to_repo": f"git@gitlab.example.com:{path_with_namespace}.git",
            "web_url": f"{self.base_url}/{path_with_namespace}",
            "_bare": str(bare),
        }
        self.projects[project_id] = project
        self.merge_requests[project_id] = []
        return project

    def add_user(self, username: str, email: str, public: bool = True) -> dict[str, Any]:
        user = {
            "id": 100 + len(self.users),
            "username": username,
            "name": username.title(),
            "state": "active",
            "avatar_url": None,
            "web_url": f"{self.base_url}/{username}",
            "public_email": email if public else "",
            "_email": email,
        }
        self.users.append(user)
        return user

    def fail_next(
        self,
        count: int,
        status: int = 500,
        retry_after: int | None = None,
        after_processing: bool = False,
        method: str | None = None,
    ) -> None:
        """The next ``count`` requests (of ``method``, if given) answer ``status``."""
        with self.lock:
            self.faults.extend(
                Fault(status, retry_after, after_processing, method) for _ in range(count)
            )

    def approve(self, project_id: int, iid: int, username: str) -> None:
        user = next(user for user in self.users if user["username"] == username)
        self.approvals.setdefault((project_id, iid), []).append(user["id"])

    def set_state(self, project_id: int, iid: int, state: str) -> None:
        request = self.find_mr(project_id, iid)
        assert request is not None
        request["state"] = state
        request[f"{state}_at"] = _now()

    def open_merge_requests(self, project_id: int) -> list[dict[str, Any]]:
        return [mr for mr in self.merge_requests[project_id] if mr["state"] == "opened"]

    def find_mr(self, project_id: int, iid: int) -> dict[str, Any] | None:
        return next((mr for mr in self.merge_requests[project_id] if mr["iid"] == iid), None)

    def branch_tip(self, project_id: int, branch: str) -> str | None:
        result = subprocess.run(
            [
                "git",
                "--git-dir",
                self.projects[project_id]["_bare"],
                "rev-parse",
                "--verify",
                "--quiet",
                f"refs/heads/{branch}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or None

    # -- the REST API ------------------------------------------------------------------------

    def git_authorised(self, authorization: str | None) -> bool:
        """GitLab's git-over-HTTP rule: Basic auth, any user name, the token as password."""
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:]).decode()
        except ValueError:
            return False
        user, _, password = decoded.partition(":")
        return bool(user) and password == self.token

    def handle(
        self, method: str, raw_path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        # the path is split before decoding: a project path arrives as group%2Fname
        parts = raw_path.split("/")
        if parts[:3] != ["", "api", "v4"]:
            return 404, {"message": "404 Not Found"}
        parts = parts[3:]
        one = {name: values[-1] for name, values in query.items()}
        if parts == ["users"] and method == "GET":
            return 200, self._users(one.get("search", ""))
        if len(parts) >= 2 and parts[0] == "projects":
            project = self._project(unquote(parts[1]))
            if project is None:
                return 404, {"message": "404 Project Not Found"}
            rest = parts[2:]
            if not rest and method == "GET":
                return 200, _public(project)
            if rest == ["merge_requests"]:
                if method == "GET":
                    return 200, self._list_mrs(project, one)
                if method == "POST":
                    return self._create_mr(project, body)
            if len(rest) >= 2 and rest[0] == "merge_requests" and rest[1].isdigit():
                request = self.find_mr(project["id"], int(rest[1]))
                if request is None:
                    return 404, {"message": "404 Not found"}
                tail = rest[2:]
                if not tail and method == "GET":
                    return 200, self._render_mr(project, request)
                if not tail and method == "PUT":
                    return self._update_mr(project, request, body)
                if tail == ["notes"] and method == "GET":
                    return 200, self.notes.get((project["id"], request["iid"]), [])
                if tail == ["notes"] and method == "POST":
                    return self._create_note(project, request, body)
                if tail == ["approvals"] and method == "GET":
                    return 200, self._approvals(project, request)
        return 404, {"message": "404 Not Found"}

    def _project(self, key: str) -> dict[str, Any] | None:
        if key.isdigit():
            return self.projects.get(int(key))
        return next((p for p in self.projects.values() if p["path_with_namespace"] == key), None)

    def _users(self, search: str) -> list[dict[str, Any]]:
        # GitLab matches an e-mail search exactly, and only public addresses for non-admins
        wanted = search.casefold()
        found = []
        for user in self.users:
            if "@" in wanted:
                if user["public_email"] and user["public_email"].casefold() == wanted:
                    found.append(user)
            elif wanted in user["username"].casefold() or wanted in user["name"].casefold():
                found.append(user)
        return [_public(user) for user in found]

    def _list_mrs(self, project: dict[str, Any], query: dict[str, str]) -> list[dict[str, Any]]:
        rows = self.merge_requests[project["id"]]
        state = query.get("state", "all")
        if state != "all":
            rows = [mr for mr in rows if mr["state"] == state]
        if "source_branch" in query:
            rows = [mr for mr in rows if mr["source_branch"] == query["source_branch"]]
        return [self._render_mr(project, mr) for mr in sorted(rows, key=lambda m: -m["iid"])]

    def _create_mr(self, project: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        missing = [k for k in ("source_branch", "target_branch", "title") if not body.get(k)]
        if missing:
            return 400, {"error": f"{', '.join(missing)} is missing"}
        for existing in self.open_merge_requests(project["id"]):
            if existing["source_branch"] == body["source_branch"]:
                return 409, {
                    "message": [
                        "Another open merge request already exists for this source branch: "
                        f"!{existing['iid']}"
                    ]
                }
        if self.branch_tip(project["id"], body["source_branch"]) is None:
            return 422, {"message": ["Source branch does not exist"]}
        iid = len(self.merge_requests[project["id"]]) + 1
        request = {
            "id": 1000 * project["id"] + iid,
            "iid": iid,
            "project_id": project["id"],
            "state": "opened",
            "created_at": _now(),
            "updated_at": _now(),
            "merged_at": None,
            "closed_at": None,
            "source_branch": body["source_branch"],
            "target_branch": body["target_branch"],
            "title": "",
            "description": "",
            "labels": [],
            "assignee_ids": [],
            "reviewer_ids": [],
        }
        self._apply(request, body)
        self.merge_requests[project["id"]].append(request)
        return 201, self._render_mr(project, request)

    def _update_mr(
        self, project: dict[str, Any], request: dict[str, Any], body: dict[str, Any]
    ) -> tuple[int, Any]:
        self._apply(request, body)
        request["updated_at"] = _now()
        return 200, self._render_mr(project, request)

    def _apply(self, request: dict[str, Any], body: dict[str, Any]) -> None:
        for name in ("title", "description", "target_branch"):
            if name in body:
                request[name] = body[name]
        if "labels" in body:
            labels = body["labels"]
            if isinstance(labels, str):
                labels = [label.strip() for label in labels.split(",")]
            request["labels"] = sorted(label for label in labels if label)
        for name in ("assignee_ids", "reviewer_ids"):
            if name in body:
                request[name] = [int(value) for value in body[name] or []]

    def _render_mr(self, project: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        draft = request["title"].lower().startswith(("draft:", "[draft]", "(draft)"))
        users = {user["id"]: _public(user) for user in self.users}
        assignees = [users[i] for i in request["assignee_ids"] if i in users]
        rendered = {k: v for k, v in request.items() if k not in ("assignee_ids", "reviewer_ids")}
        rendered.update(
            {
                "draft": draft,
                "work_in_progress": draft,
                "sha": self.branch_tip(project["id"], request["source_branch"]),
                "web_url": f"{project['web_url']}/-/merge_requests/{request['iid']}",
                "assignees": assignees,
                "assignee": assignees[0] if assignees else None,
                "reviewers": [users[i] for i in request["reviewer_ids"] if i in users],
                "merge_status": "can_be_merged",
                "detailed_merge_status": "draft_status" if draft else "mergeable",
                "references": {"short": f"!{request['iid']}"},
            }
        )
        return rendered

    def _create_note(
        self, project: dict[str, Any], request: dict[str, Any], body: dict[str, Any]
    ) -> tuple[int, Any]:
        if not body.get("body"):
            return 400, {"error": "body is missing"}
        notes = self.notes.setdefault((project["id"], request["iid"]), [])
        note = {
            "id": 5000 + sum(len(n) for n in self.notes.values()),
            "type": None,
            "body": body["body"],
            "author": {"id": 1, "username": "specfleet-bot"},
            "created_at": _now(),
            "updated_at": _now(),
            "system": False,
            "noteable_id": request["id"],
            "noteable_type": "MergeRequest",
            "noteable_iid": request["iid"],
            "resolvable": False,
        }
        notes.append(note)
        return 201, note

    def _approvals(self, project: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        users = {user["id"]: _public(user) for user in self.users}
        approvers = self.approvals.get((project["id"], request["iid"]), [])
        return {
            "id": request["id"],
            "iid": request["iid"],
            "project_id": project["id"],
            "title": request["title"],
            "state": request["state"],
            "approved": bool(approvers),
            "approvals_required": 1,
            "approvals_left": 0 if approvers else 1,
            "approved_by": [{"user": users[i]} for i in approvers if i in users],
        }

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.method is None or fault.method == method:
                    return self.faults.pop(index)
        return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@contextmanager
def fake_gitlab(root: Path, token: str) -> Iterator[FakeGitLab]:
    """Serve a fresh :class:`FakeGitLab` on a free loopback port."""
    state = FakeGitLab(root=root, token=token)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def _serve(self, method: str) -> None:
            raw = self._body()
            text = raw.decode("utf-8", "replace") if not self.path.endswith("-pack") else ""
            state.log.append(LoggedRequest(method, self.path, dict(self.headers.items()), text))
            if not self.path.startswith("/api/"):
                self._git(method, raw)
                return
            if self.headers.get("PRIVATE-TOKEN") != state.token:
                self._send(401, {"message": "401 Unauthorized"})
                return
            fault = state.take_fault(method)
            if fault is not None and not fault.after_processing:
                self._fail(fault)
                return
            split = urlsplit(self.path)
            try:
                body = json.loads(text) if text else {}
            except json.JSONDecodeError:
                body = {key: values[-1] for key, values in parse_qs(text).items()}
            with state.lock:
                status, payload = state.handle(method, split.path, parse_qs(split.query), body)
            if fault is not None:
                self._fail(fault)
                return
            self._send(status, payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _git(self, method: str, body: bytes) -> None:
            if not state.git_authorised(self.headers.get("Authorization")):
                self._send(
                    401,
                    {"message": "HTTP Basic: Access denied"},
                    {"WWW-Authenticate": 'Basic realm="GitLab"'},
                )
                return
            split = urlsplit(self.path)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(state.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": method,
                "PATH_INFO": unquote(split.path),
                "QUERY_STRING": split.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_USER": "specfleet-bot",  # lets http-backend accept pushes
                "REMOTE_ADDR": "127.0.0.1",
            }
            result = subprocess.run(
                ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
            )
            head, _, payload = result.stdout.partition(b"\r\n\r\n")
            status = 200
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers[name] = value.strip()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _fail(self, fault: Fault) -> None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            message = "Retry later" if fault.status == 429 else "500 Internal Server Error"
            self._send(fault.status, {"message": message}, headers)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
