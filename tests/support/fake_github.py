"""A GitHub (Enterprise Server layout) speaking REST JSON over real HTTP, for what specfleet uses.

The API lives under ``/api/v3`` and GraphQL at ``/api/graphql`` as on GitHub Enterprise
Server, so ``SPECFLEET_GITHUB_URL=<base>/api/v3`` points at it. It follows GitHub's documented
behaviour: ``Authorization: Bearer`` tokens, pull requests with ``number``, ``node_id``,
``draft``, ``head.sha``, ``merged_at``, ``html_url``; 422 "A pull request already exists" for a
second open pull request from one head; ``head=OWNER:branch`` filtering; labels replaced by
``PUT /issues/N/labels``; ``Link`` pagination; user search by public e-mail; the draft
mutations in GraphQL. A repository's ``clone_url`` is served over smart HTTP by ``git
http-backend``; pushing needs Basic auth with the token as password (GitHub's
``x-access-token`` rule), reading does not (public repositories). A fault injector answers
the next API requests with an error (500, 502, or 403/429 with ``Retry-After`` as GitHub's
secondary rate limit), before or after doing the work; every request is logged.
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

from tests.support.fake_gitlab import Fault, LoggedRequest

PAGE = 30  # GitHub's default page size


@dataclass
class FakeGitHub:
    """The server's state: repositories, users, pull requests, comments, reviews, faults, log."""

    root: Path
    token: str
    base_url: str = ""
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v3"

    # -- set-up and what a GitHub user would do in the browser -------------------------------

    def add_repository(self, full_name: str, source: Path | None = None) -> dict[str, Any]:
        bare = self.root / f"{full_name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(source), str(bare)], check=True
            )
        else:
            subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
        owner, _, name = full_name.partition("/")
        repository = {
            "id": len(self.repositories) + 1,
            "node_id": f"R_{len(self.repositories) + 1}",
            "name": name,
            "full_name": full_name,
            "owner": {"login": owner, "type": "Organization"},
            "private": False,
            "default_branch": "main",
            "html_url": f"{self.base_url}/{full_name}",
            "clone_url": f"{self.base_url}/{full_name}.git",
            "ssh_url": f"git@github.example.com:{full_name}.git",
            "_bare": str(bare),
        }
        self.repositories[full_name] = repository
        self.pulls[full_name] = []
        return repository

    def add_user(self, login: str, email: str, public: bool = True) -> dict[str, Any]:
        user = {
            "login": login,
            "id": 100 + len(self.users),
            "node_id": f"U_{login}",
            "type": "User",
            "html_url": f"{self.base_url}/{login}",
            "_email": email if public else "",
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
        with self.lock:
            self.faults.extend(
                Fault(status, retry_after, after_processing, method) for _ in range(count)
            )

    def review(self, full_name: str, number: int, login: str, state: str = "APPROVED") -> None:
        user = next(user for user in self.users if user["login"] == login)
        entries = self.reviews.setdefault((full_name, number), [])
        entries.append({"id": 700 + len(entries), "user": _public(user), "state": state})

    def merge(self, full_name: str, number: int) -> None:
        pull = self.find(full_name, number)
        assert pull is not None
        pull.update(state="closed", merged=True, merged_at=_now(), closed_at=_now())

    def close(self, full_name: str, number: int) -> None:
        pull = self.find(full_name, number)
        assert pull is not None
        pull.update(state="closed", closed_at=_now())

    def find(self, full_name: str, number: int) -> dict[str, Any] | None:
        return next((p for p in self.pulls[full_name] if p["number"] == number), None)

    def open_pulls(self, full_name: str) -> list[dict[str, Any]]:
        return [pull for pull in self.pulls[full_name] if pull["state"] == "open"]

    def branch_tip(self, full_name: str, branch: str) -> str | None:
        result = subprocess.run(
            [
                "git",
                "--git-dir",
                self.repositories[full_name]["_bare"],
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

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if path == "/api/graphql" and method == "POST":
            return self._graphql(body)
        if not path.startswith("/api/v3/"):
            return 404, _not_found()
        parts = path[len("/api/v3/") :].split("/")
        if parts == ["search", "users"] and method == "GET":
            return 200, self._search_users(query.get("q", ""))
        if len(parts) < 3 or parts[0] != "repos":
            return 404, _not_found()
        full_name = f"{parts[1]}/{parts[2]}"
        repository = self.repositories.get(full_name)
        if repository is None:
            return 404, _not_found()
        rest = parts[3:]
        if not rest and method == "GET":
            return 200, _public(repository)
        if rest == ["pulls"]:
            if method == "GET":
                return 200, self._list_pulls(full_name, query)
            if method == "POST":
                return self._create_pull(full_name, body)
        if len(rest) >= 2 and rest[0] in ("pulls", "issues") and rest[1].isdigit():
            pull = self.find(full_name, int(rest[1]))
            if pull is None:
                return 404, _not_found()
            return self._on_pull(full_name, pull, rest[0], rest[2:], method, body)
        return 404, _not_found()

    def _on_pull(
        self,
        full_name: str,
        pull: dict[str, Any],
        kind: str,
        tail: list[str],
        method: str,
        body: Any,
    ) -> tuple[int, Any]:
        key = (full_name, pull["number"])
        route = (kind, tuple(tail), method)
        if route in (("pulls", (), "GET"), ("issues", (), "GET")):
            return 200, self._render(full_name, pull)
        if route == ("pulls", (), "PATCH"):
            for name in ("title", "body", "state"):
                if name in body:
                    pull[name] = body[name]
            if "base" in body:
                pull["base_ref"] = body["base"]
            pull["updated_at"] = _now()
            return 200, self._render(full_name, pull)
        if route == ("pulls", ("reviews",), "GET"):
            return 200, self.reviews.get(key, [])
        if route == ("pulls", ("requested_reviewers",), "POST"):
            known = {user["login"] for user in self.users}
            unknown = [login for login in body.get("reviewers", []) if login not in known]
            if unknown:
                return 422, _invalid("Reviews may only be requested from collaborators.")
            pull["requested"] = sorted(set(pull["requested"]) | set(body["reviewers"]))
            return 201, self._render(full_name, pull)
        if route == ("issues", ("assignees",), "POST"):
            pull["assignees"] = sorted(set(pull["assignees"]) | set(body.get("assignees", [])))
            return 201, self._render(full_name, pull)
        if route == ("issues", ("labels",), "PUT"):
            pull["labels"] = sorted(set(body.get("labels", [])))
            return 200, [_label(name) for name in pull["labels"]]
        if route == ("issues", ("comments",), "GET"):
            return 200, self.comments.get(key, [])
        if route == ("issues", ("comments",), "POST"):
            if not body.get("body"):
                return 422, _invalid("body wasn't supplied.")
            entries = self.comments.setdefault(key, [])
            comment = {
                "id": 9000 + sum(len(c) for c in self.comments.values()),
                "body": body["body"],
                "user": {"login": "specfleet-bot", "type": "Bot"},
                "created_at": _now(),
            }
            entries.append(comment)
            return 201, comment
        return 404, _not_found()

    def _search_users(self, q: str) -> dict[str, Any]:
        term = q.replace(" in:email", "").strip().casefold()
        found = [_public(u) for u in self.users if u["_email"] and u["_email"].casefold() == term]
        return {"total_count": len(found), "incomplete_results": False, "items": found}

    def _list_pulls(self, full_name: str, query: dict[str, str]) -> list[dict[str, Any]]:
        rows = self.pulls[full_name]
        state = query.get("state", "open")
        if state != "all":
            rows = [pull for pull in rows if pull["state"] == state]
        if "head" in query:
            owner, _, branch = query["head"].partition(":")
            if owner == full_name.split("/")[0]:
                rows = [pull for pull in rows if pull["head_ref"] == branch]
            else:
                rows = []
        return [self._render(full_name, pull) for pull in sorted(rows, key=lambda p: -p["number"])]

    def _create_pull(self, full_name: str, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [name for name in ("head", "base", "title") if not body.get(name)]
        if missing:
            return 422, _invalid(f"{missing[0]} wasn't supplied.")
        head = str(body["head"]).split(":")[-1]
        for pull in self.open_pulls(full_name):
            if pull["head_ref"] == head:
                owner = full_name.split("/")[0]
                return 422, _invalid(f"A pull request already exists for {owner}:{head}.")
        if self.branch_tip(full_name, head) is None:
            return 422, _invalid("head is invalid")
        number = len(self.pulls[full_name]) + 1
        pull = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body.get("body") or "",
            "draft": bool(body.get("draft")),
            "head_ref": head,
            "base_ref": body["base"],
            "labels": [],
            "assignees": [],
            "requested": [],
            "merged": False,
            "merged_at": None,
            "closed_at": None,
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.pulls[full_name].append(pull)
        return 201, self._render(full_name, pull)

    def _graphql(self, body: dict[str, Any]) -> tuple[int, Any]:
        query = str(body.get("query", ""))
        node = str((body.get("variables") or {}).get("id", ""))
        pull = next(
            (p for pulls in self.pulls.values() for p in pulls if p.get("_node") == node), None
        )
        if pull is None:
            return 200, {"errors": [{"type": "NOT_FOUND", "message": f"no node {node!r}"}]}
        if "markPullRequestReadyForReview" in query:
            pull["draft"] = False
        elif "convertPullRequestToDraft" in query:
            pull["draft"] = True
        else:
            return 200, {"errors": [{"message": "unsupported operation"}]}
        return 200, {"data": {"result": {"clientMutationId": None}}}

    def _render(self, full_name: str, pull: dict[str, Any]) -> dict[str, Any]:
        repository = _public(self.repositories[full_name])
        users = {user["login"]: _public(user) for user in self.users}
        pull["_node"] = f"PR_{repository['id']}_{pull['number']}"
        return {
            "url": f"{self.api_url}/repos/{full_name}/pulls/{pull['number']}",
            "id": 5000 + pull["number"],
            "node_id": pull["_node"],
            "html_url": f"{repository['html_url']}/pull/{pull['number']}",
            "number": pull["number"],
            "state": pull["state"],
            "locked": False,
            "title": pull["title"],
            "body": pull["body"],
            "draft": pull["draft"],
            "user": {"login": "specfleet-bot", "type": "Bot"},
            "labels": [_label(name) for name in pull["labels"]],
            "assignees": [users[login] for login in pull["assignees"] if login in users],
            "requested_reviewers": [users[login] for login in pull["requested"] if login in users],
            "head": {
                "label": f"{full_name.split('/')[0]}:{pull['head_ref']}",
                "ref": pull["head_ref"],
                "sha": self.branch_tip(full_name, pull["head_ref"]),
                "repo": repository,
            },
            "base": {"label": f"x:{pull['base_ref']}", "ref": pull["base_ref"], "repo": repository},
            "merged": pull["merged"],
            "merged_at": pull["merged_at"],
            "closed_at": pull["closed_at"],
            "created_at": pull["created_at"],
            "updated_at": pull["updated_at"],
        }

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fault.method is None or fault.method == method:
                    return self.faults.pop(index)
        return None


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _label(name: str) -> dict[str, Any]:
    return {"id": abs(hash(name)) % 10_000, "name": name, "color": "ededed", "default": False}


def _not_found() -> dict[str, str]:
    return {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


def _invalid(message: str) -> dict[str, Any]:
    return {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "code": "custom", "message": message}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page(items: list[Any], query: dict[str, str], url: str) -> tuple[list[Any], str | None]:
    size = min(int(query.get("per_page", PAGE)), 100)
    page = int(query.get("page", 1))
    chunk = items[(page - 1) * size : page * size]
    if page * size >= len(items):
        return chunk, None
    split = urlsplit(url)
    rest = {k: v for k, v in query.items() if k not in ("page", "per_page")}
    params = "&".join([*(f"{k}={v}" for k, v in rest.items()), f"per_page={size}"])
    return chunk, f'<{split.path}?{params}&page={page + 1}>; rel="next"'


class _Handler(BaseHTTPRequestHandler):
    """One request to the fake; ``state`` is set on a subclass per server."""

    protocol_version = "HTTP/1.1"
    state: FakeGitHub

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        raw = self._body()
        text = raw.decode("utf-8", "replace") if not self.path.endswith("-pack") else ""
        self.state.log.append(LoggedRequest(method, self.path, dict(self.headers.items()), text))
        if not self.path.startswith("/api/"):
            self._git(method, raw)
            return
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._send(401, {"message": "Bad credentials"})
            return
        fault = self.state.take_fault(method)
        if fault is not None and not fault.after_processing:
            self._fail(fault)
            return
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        body = json.loads(text) if text else {}
        with self.state.lock:
            status, payload = self.state.handle(method, unquote(split.path), query, body)
        if fault is not None:
            self._fail(fault)
            return
        link = None
        if method == "GET" and isinstance(payload, list):
            payload, link = _page(payload, query, self.path)
        self._send(status, payload, {"Link": link} if link else None)

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
        split = urlsplit(self.path)
        pushing = "git-receive-pack" in split.path or "service=git-receive-pack" in split.query
        if pushing and not _git_authorised(self.headers.get("Authorization"), self.state.token):
            self._send(401, {"message": "denied"}, {"WWW-Authenticate": 'Basic realm="GitHub"'})
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.state.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": method,
            "PATH_INFO": unquote(split.path),
            "QUERY_STRING": split.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "x-access-token",
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
        if fault.status in (403, 429):
            message = "You have exceeded a secondary rate limit. Please wait a few minutes."
        else:
            message = "Server Error"
        self._send(fault.status, {"message": message}, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def fake_github(root: Path, token: str) -> Iterator[FakeGitHub]:
    """Serve a fresh :class:`FakeGitHub` on a free loopback port."""
    state = FakeGitHub(root=root, token=token)

    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
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


def _git_authorised(authorization: str | None, token: str) -> bool:
    """GitHub's git-over-HTTPS rule for tokens: Basic auth with the token as password."""
    if not authorization or not authorization.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:]).decode()
    except ValueError:
        return False
    user, _, password = decoded.partition(":")
    return bool(user) and password == token
