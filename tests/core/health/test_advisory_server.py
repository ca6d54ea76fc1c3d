"""The OSV-compatible API over an advisory directory: answers, errors, HTTP limits, lifecycle."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from specfleet.core.health.advisories import (
    OsvApi,
    OsvDirectory,
    RunningServer,
    is_loopback,
    start_server,
)
from specfleet.core.health.advisories.server import MAX_BODY_BYTES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "advisories"


@pytest.fixture
def api() -> OsvApi:
    return OsvApi(OsvDirectory(FIXTURES))


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with start_server(OsvDirectory(FIXTURES)) as running:
        yield running


def post(api: OsvApi, path: str, body: Any) -> tuple[int, Any]:
    response = api.handle("POST", path, json.dumps(body).encode())
    return response.status, response.body


def query(name: str, version: str | None = None, ecosystem: str = "PyPI") -> dict[str, Any]:
    document: dict[str, Any] = {"package": {"name": name, "ecosystem": ecosystem}}
    if version is not None:
        document["version"] = version
    return document


def test_query_returns_full_records(api: OsvApi) -> None:
    """POST /v1/query answers {"vulns": [...]} with each record exactly as stored."""
    status, body = post(api, "/v1/query", query("requests", "2.28.2"))
    assert status == 200
    (record,) = body["vulns"]
    stored = (FIXTURES / "vulns" / "requests" / "PYSEC-2023-74.yaml").read_text()
    expected = yaml.safe_load(stored)
    assert record["id"] == "PYSEC-2023-74"
    assert record["affected"] == expected["affected"]
    assert record["details"] == expected["details"]
    assert record["modified"] == "2023-06-05T01:13:00.534973Z"  # text, as pip-audit parses it
    json.dumps(body)


def test_query_without_match_is_an_empty_object(api: OsvApi) -> None:
    """No advisory -> {} (what osv.dev answers and pip-audit reads as "nothing found")."""
    assert post(api, "/v1/query", query("pandas", "1.5.3")) == (200, {})
    assert post(api, "/v1/query", query("no-such-package", "1.0")) == (200, {})
    assert post(api, "/v1/query", query("demo-withdrawn", "1.0")) == (200, {})
    assert post(api, "/v1/query", query("requests", "2.28.2", ecosystem="npm")) == (200, {})


def test_query_names_are_canonicalised_and_version_optional(api: OsvApi) -> None:
    """PyArrow finds pyarrow; without a version every live record of the package comes back."""
    _, body = post(api, "/v1/query", query("PyArrow", "14.0.0"))
    assert [v["id"] for v in body["vulns"]] == ["PYSEC-2023-238"]
    _, body = post(api, "/v1/query", query("demo_malformed"))
    assert [v["id"] for v in body["vulns"]] == ["DEMO-2024-5"]
    assert post(api, "/v1/query", query("redis")) == (200, {})  # only a withdrawn record


def test_query_by_purl(api: OsvApi) -> None:
    """A package URL carries name and version; both versions at once is a 400."""
    _, body = post(api, "/v1/query", {"package": {"purl": "pkg:pypi/duckdb@0.9.2"}})
    assert [v["id"] for v in body["vulns"]] == ["PYSEC-2024-25"]
    _, body = post(api, "/v1/query", {"package": {"purl": "pkg:pypi/duckdb"}, "version": "0.9.2"})
    assert [v["id"] for v in body["vulns"]] == ["PYSEC-2024-25"]
    assert post(api, "/v1/query", {"package": {"purl": "pkg:npm/duckdb@0.9.2"}}) == (200, {})
    status, body = post(
        api, "/v1/query", {"package": {"purl": "pkg:pypi/duckdb@0.9.2"}, "version": "0.9.2"}
    )
    assert status == 400 and body["code"] == 3


def test_querybatch(api: OsvApi) -> None:
    """POST /v1/querybatch answers ids and modification times per query, in order."""
    status, body = post(
        api,
        "/v1/querybatch",
        {
            "queries": [
                query("pyarrow", "14.0.0"),
                query("pandas", "1.5.3"),
                query("duckdb", "0.9.2"),
            ]
        },
    )
    assert status == 200
    assert body == {
        "results": [
            {"vulns": [{"id": "PYSEC-2023-238", "modified": "2023-11-20T08:59:06.851388Z"}]},
            {},
            {"vulns": [{"id": "PYSEC-2024-25", "modified": "2024-02-06T00:25:51.550516Z"}]},
        ]
    }
    status, body = post(api, "/v1/querybatch", {"queries": [query("pyarrow", "1"), {"x": 1}]})
    assert status == 400 and "queries[1]" in body["message"]


def test_get_vuln_by_id(api: OsvApi) -> None:
    """GET /v1/vulns/{id} returns the record, 404 in the API's error shape when unknown."""
    response = api.handle("GET", "/v1/vulns/PYSEC-2024-25")
    assert response.status == 200 and response.body["aliases"] == ["CVE-2024-22682"]
    missing = api.handle("GET", "/v1/vulns/PYSEC-1999-1")
    assert (missing.status, missing.body["code"]) == (404, 5)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/query", b"{not json", 400, "not JSON"),
        ("POST", "/v1/query", b"\xff\xfe", 400, "not JSON"),
        ("POST", "/v1/query", b"[]", 400, "must be a JSON object"),
        ("POST", "/v1/query", b'{"version": "1.0"}', 400, "needs a 'package'"),
        ("POST", "/v1/query", b'{"package": {"name": "x"}}', 400, "ecosystem' is required"),
        ("POST", "/v1/query", b'{"commit": "abc"}', 400, "commit queries"),
        ("POST", "/v1/query", b'{"package": {"purl": "npm/x"}}', 400, "not a package URL"),
        ("POST", "/v1/query", json.dumps(query("x", 1)).encode(), 400, "'version' must be"),  # type: ignore[arg-type]
        ("POST", "/v1/querybatch", b'{"queries": {}}', 400, "'queries' list"),
        ("GET", "/v1/query", b"", 405, "use POST"),
        ("POST", "/v1/vulns/PYSEC-2024-25", b"", 405, "use GET"),
        ("GET", "/v2/query", b"", 404, "no such endpoint"),
        ("GET", "/", b"", 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_json_errors(
    api: OsvApi, method: str, path: str, body: bytes, status: int, message: str
) -> None:
    """Bad input is a JSON error with a gRPC-style code and a message, never an exception."""
    response = api.handle(method, path, body)
    assert response.status == status
    assert message in response.body["message"]
    assert isinstance(response.body["code"], int)


def test_over_http_with_keep_alive(server: RunningServer) -> None:
    """Over HTTP: JSON answers, two requests on one connection, 405 names the allowed method."""
    parts = urlsplit(server.url)
    assert parts.hostname == "127.0.0.1"  # loopback unless asked otherwise
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        for version, expected in (("14.0.0", 1), ("14.0.1", 0)):
            connection.request("POST", "/v1/query", json.dumps(query("pyarrow", version)))
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Type") == "application/json"
            assert len(json.loads(response.read()).get("vulns", [])) == expected
        connection.request("GET", "/v1/query")
        response = connection.getresponse()
        assert (response.status, response.getheader("Allow")) == (405, "POST")
        assert json.loads(response.read())["code"] == 12
    finally:
        connection.close()
    assert server.query_url == f"{server.url}/v1/query"


def raw_request(server: RunningServer, data: bytes) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_body_limits(server: RunningServer) -> None:
    """Bodies over 1 MB get 413 without being read; no length gets 411; a bad length 400."""
    status, body = raw_request(
        server,
        f"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{}}".encode(),
    )
    assert (status, body["code"]) == (413, 8)
    status, _ = raw_request(
        server, b"POST /v1/query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 411
    status, _ = raw_request(
        server, b"POST /v1/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert status == 411
    status, _ = raw_request(
        server, b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n"
    )
    assert status == 400


def test_a_full_megabyte_is_accepted(server: RunningServer) -> None:
    """The limit is inclusive: a 1 MB body (padded JSON) is still answered."""
    document = json.dumps(query("pyarrow", "14.0.0"))
    body = document + " " * (MAX_BODY_BYTES - len(document))
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        connection.request("POST", "/v1/query", body)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["vulns"][0]["id"] == "PYSEC-2023-238"
    finally:
        connection.close()


def test_concurrent_queries(server: RunningServer) -> None:
    """Many clients at once all get correct answers (one directory shared by threads)."""
    parts = urlsplit(server.url)

    def ask(version: str) -> int:
        connection = http.client.HTTPConnection(parts.netloc, timeout=10)
        try:
            connection.request("POST", "/v1/query", json.dumps(query("requests", version)))
            return len(json.loads(connection.getresponse().read()).get("vulns", []))
        finally:
            connection.close()

    versions = ["2.28.2", "2.31.0"] * 20
    with ThreadPoolExecutor(max_workers=10) as pool:
        counts = list(pool.map(ask, versions))
    assert counts == [1, 0] * 20


def test_stop_releases_the_port() -> None:
    """After stop the port refuses connections; stopping twice is harmless."""
    running = start_server(OsvDirectory(FIXTURES))
    parts = urlsplit(running.url)
    assert parts.port and parts.port > 0  # port 0 picked a free port
    running.stop()
    running.stop()
    with pytest.raises(OSError):
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 - a string under test, nothing binds
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    """Only loopback addresses count as local; wildcard and named hosts do not."""
    assert is_loopback(host) is loopback
