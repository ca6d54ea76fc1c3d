"""An OSV-compatible HTTP API over an :class:`OsvDirectory`, for organisations without internet.

An air-gapped organisation mirrors the PyPA advisory database and serves it here; pip-audit
then audits against it with ``--osv-url http://127.0.0.1:PORT/v1/query``. The subset of the
OSV API (https://google.github.io/osv.dev/api/) that pip-audit and osv-scanner use:

- ``POST /v1/query``: ``{"package": {"name", "ecosystem"} | {"purl"}, "version"?}`` ->
  ``{"vulns": [<full OSV records>]}``, or ``{}`` when nothing matches (pip-audit reads an
  empty object as "no vulnerabilities"). Without a version, every record of the package.
- ``POST /v1/querybatch``: ``{"queries": [...]}`` -> ``{"results": [{"vulns": [{"id",
  "modified"}]} | {}]}``, one result per query, in order.
- ``GET /v1/vulns/{id}``: the full record, or 404.

Errors are JSON in the API's shape, ``{"code": <gRPC code>, "message": ...}``: 400 for a body
that is not JSON or not a query, 404 for an unknown path or id, 405 for a wrong method, 411
without a Content-Length, 413 for a body over 1 MB. Only PyPI is served; queries for other
ecosystems get ``{}``. Commit queries are refused (400): the mirror does not index git history.

The server binds to 127.0.0.1 by default; exposing it further is the caller's decision.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.health.advisories.interface import AdvisoryError
from specfleet.core.health.advisories.osv_directory import OsvDirectory
from specfleet.core.health.advisories.osv_record import PYPI, OsvRecord
from specfleet.core.log import get_logger

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH_QUERIES = 1000  # the public API's limit too
READ_TIMEOUT_SECONDS = 30  # a client that stops sending must not hold a thread forever
DEFAULT_HOST = "127.0.0.1"
# HTTP status -> the gRPC status code the OSV API reports in error bodies
_GRPC_CODES = {400: 3, 404: 5, 405: 12, 411: 3, 413: 8, 500: 13}

log = get_logger(__name__)


@dataclass(frozen=True)
class Response:
    """What to send back: an HTTP status and a JSON body."""

    status: int
    body: Mapping[str, Any]
    allow: str | None = None  # the Allow header of a 405

    @classmethod
    def error(cls, status: int, message: str, allow: str | None = None) -> Response:
        return cls(status, {"code": _GRPC_CODES.get(status, 2), "message": message}, allow)


class _BadQuery(Exception):
    """A query the API cannot answer; its message goes back to the client with a 400."""


@dataclass(frozen=True)
class _Query:
    package: NormalizedName | None  # None: an ecosystem this mirror does not serve
    version: str | None


class OsvApi:
    """The answers of the OSV API over one directory, independent of HTTP (tested directly)."""

    def __init__(self, directory: OsvDirectory) -> None:
        self.directory = directory
        self._problems_logged = 0
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, body: bytes = b"") -> Response:
        """Answer one request; ``path`` may carry a query string, which is ignored."""
        try:
            return self._route(method, path, body)
        finally:
            self._log_new_problems()

    def _log_new_problems(self) -> None:
        # files are read lazily, so a malformed one surfaces during some request
        problems = self.directory.problems
        with self._lock:
            fresh = problems[self._problems_logged :]
            self._problems_logged = len(problems)
        for problem in fresh:
            log.warning("advisory file skipped", path=problem.path, reason=problem.reason)

    def _route(self, method: str, path: str, body: bytes) -> Response:
        route = urlsplit(path).path
        if route in ("/v1/query", "/v1/querybatch"):
            if method != "POST":
                return Response.error(405, f"use POST for {route}", allow="POST")
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                return Response.error(400, f"the body is not JSON: {error}")
            try:
                if route == "/v1/query":
                    return Response(200, self.query(document))
                return Response(200, self.query_batch(document))
            except _BadQuery as error:
                return Response.error(400, str(error))
        if route.startswith("/v1/vulns/"):
            if method != "GET":
                return Response.error(405, "use GET for /v1/vulns/{id}", allow="GET")
            record = self.directory.record(unquote(route.removeprefix("/v1/vulns/")))
            if record is None:
                return Response.error(404, "Bug not found.")
            return Response(200, record.document)
        return Response.error(404, f"no such endpoint: {route}")

    def query(self, document: object) -> dict[str, Any]:
        """``POST /v1/query``: full records affecting the version, or ``{}``."""
        records = self._matching(_parse_query(document))
        return {"vulns": [record.document for record in records]} if records else {}

    def query_batch(self, document: object) -> dict[str, Any]:
        """``POST /v1/querybatch``: ids and modification times per query, in order."""
        if not isinstance(document, Mapping) or not isinstance(document.get("queries"), list):
            raise _BadQuery("a batch needs a 'queries' list")
        queries = document["queries"]
        if len(queries) > MAX_BATCH_QUERIES:
            raise _BadQuery(f"at most {MAX_BATCH_QUERIES} queries per batch")
        parsed = []
        for index, query in enumerate(queries):
            try:
                parsed.append(_parse_query(query))
            except _BadQuery as error:
                raise _BadQuery(f"queries[{index}]: {error}") from None
        results: list[dict[str, Any]] = []
        for query in parsed:
            records = self._matching(query)
            summaries = [_summary(record) for record in records]
            results.append({"vulns": summaries} if summaries else {})
        return {"results": results}

    def _matching(self, query: _Query) -> list[OsvRecord]:
        if query.package is None:
            return []
        records = self.directory.records_of(query.package)
        matching = []
        for record in records:
            advisory = record.advisories[query.package]
            if advisory.withdrawn:
                continue
            # "cannot tell" (an unparsable range) counts as a match, as in OsvDirectory
            if query.version is None or advisory.affects(query.version) is not False:
                matching.append(record)
        return matching


def _summary(record: OsvRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": record.id}
    if record.modified is not None:
        summary["modified"] = record.modified
    return summary


def _parse_query(document: object) -> _Query:
    if not isinstance(document, Mapping):
        raise _BadQuery("a query must be a JSON object")
    if document.get("commit") is not None:
        raise _BadQuery("commit queries are not supported by this advisory mirror")
    version = document.get("version")
    if version is not None and not isinstance(version, str):
        raise _BadQuery("'version' must be a string")
    package = document.get("package")
    if not isinstance(package, Mapping):
        raise _BadQuery("a query needs a 'package'")
    purl = package.get("purl")
    if purl is not None:
        if not isinstance(purl, str):
            raise _BadQuery("'package.purl' must be a string")
        kind, purl_name, purl_version = _parse_purl(purl)
        if purl_version is not None and version is not None:
            raise _BadQuery("give the version in the purl or in 'version', not both")
        version = version if purl_version is None else purl_version
        if kind != "pypi":
            return _Query(None, version)
        return _Query(canonicalize_name(purl_name), version)
    name = package.get("name")
    ecosystem = package.get("ecosystem")
    if not isinstance(name, str) or not name.strip():
        raise _BadQuery("'package' needs a 'name' and an 'ecosystem', or a 'purl'")
    if not isinstance(ecosystem, str) or not ecosystem:
        raise _BadQuery("'package.ecosystem' is required with 'package.name'")
    if ecosystem.lower() != PYPI.lower():
        return _Query(None, version)
    return _Query(canonicalize_name(name), version)


def _parse_purl(purl: str) -> tuple[str, str, str | None]:
    """(type, name, version) of ``pkg:type/[namespace/]name[@version][?qualifiers][#subpath]``."""
    if not purl.startswith("pkg:"):
        raise _BadQuery(f"not a package URL: {purl!r}")
    rest = purl.removeprefix("pkg:").lstrip("/").split("#", 1)[0].split("?", 1)[0]
    kind, _, path = rest.partition("/")
    name_part, at, version = path.rpartition("@")
    if not at:
        name_part, version = path, ""
    name = unquote(name_part.rsplit("/", 1)[-1])
    if not kind or not name:
        raise _BadQuery(f"not a package URL with a name: {purl!r}")
    return kind.lower(), name, unquote(version) or None


class _Handler(BaseHTTPRequestHandler):
    server: OsvHttpServer
    protocol_version = "HTTP/1.1"  # keep-alive: pip-audit sends one request per package
    timeout = READ_TIMEOUT_SECONDS
    server_version = "specfleet-osv"
    # headers and body go out in two writes; Nagle plus delayed ACKs would add ~40 ms each
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0") != "0":
            self.close_connection = True  # a GET body stays unread
        self._send(self._answer("GET", b""))

    def do_POST(self) -> None:
        body = self._body()
        if isinstance(body, Response):
            self.close_connection = True  # the unread body must not be taken as a request
            self._send(body)
            return
        self._send(self._answer("POST", body))

    def do_PUT(self) -> None:
        self.close_connection = True  # any body stays unread
        self._send(self._answer("PUT", b""))

    do_DELETE = do_PATCH = do_PUT

    def _answer(self, method: str, body: bytes) -> Response:
        try:
            return self.server.api.handle(method, self.path, body)
        except AdvisoryError as error:  # the directory vanished or became unreadable
            log.error("advisory directory failed", error=str(error))
            return Response.error(500, str(error))
        except Exception:  # one bad request must not leave the client without an answer
            log.exception("advisory request failed", path=self.path)
            return Response.error(500, "internal error")

    def _body(self) -> bytes | Response:
        if self.headers.get("Transfer-Encoding"):
            return Response.error(411, "send the body with a Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return Response.error(411, "a Content-Length is required")
        try:
            length = int(length_text)
        except ValueError:
            return Response.error(400, "the Content-Length is not a number")
        if length < 0:
            return Response.error(400, "the Content-Length is negative")
        if length > MAX_BODY_BYTES:
            return Response.error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _send(self, response: Response) -> None:
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if response.allow:
            self.send_header("Allow", response.allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("advisory request", client=self.client_address[0], line=format % args)


class OsvHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server answering the OSV API for one directory."""

    daemon_threads = True  # an open keep-alive connection must not block shutdown
    request_queue_size = 128  # the default 5 drops connections of a burst of clients

    def __init__(self, api: OsvApi, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.api = api
        host = host.strip("[]")  # "[::1]" as written in URLs
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang without DNS
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host if isinstance(host, str) else host.decode()
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        shown = f"[{self.server_name}]" if ":" in self.server_name else self.server_name
        return f"http://{shown}:{self.server_port}"

    @property
    def query_url(self) -> str:
        """What to give pip-audit as ``--osv-url``."""
        return f"{self.url}/v1/query"


def make_server(directory: OsvDirectory, host: str = DEFAULT_HOST, port: int = 0) -> OsvHttpServer:
    """Bind (port 0 picks a free port) without serving yet; ``serve_forever`` serves."""
    return OsvHttpServer(OsvApi(directory), host, port)


class RunningServer:
    """A server answering in a background thread; ``stop`` (or leaving ``with``) ends it."""

    def __init__(self, server: OsvHttpServer) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long stop() may wait for the loop
            name="osv-advisory-server",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def query_url(self) -> str:
        return self.server.query_url

    def stop(self) -> None:
        """Stop serving, wait for the loop to end and release the port (idempotent)."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(directory: OsvDirectory, host: str = DEFAULT_HOST, port: int = 0) -> RunningServer:
    """Serve ``directory`` in a background thread; the result knows its URL and stops cleanly."""
    return RunningServer(make_server(directory, host, port))


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
