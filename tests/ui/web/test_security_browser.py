"""Console security in a real browser and against a real server process: CSP without
violations, sessions ended by logout, throttled sign-in, the credentials page, and a 100 MB
upload refused without the server's memory growing."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from specfleet.core.db import ensure_schema, make_engine
from specfleet.web.auth import create_account, issue_token
from tests.support.web_process import specfleet_web
from tests.ui.web.conftest import OWNER_A, PASSWORD
from tests.ui.web.test_browser import browser  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.browser


@dataclass
class Server:
    url: str
    pid: int
    tokens: dict[str, str]


@pytest.fixture
def server(specfleet_home: Path) -> Iterator[Server]:
    """`specfleet web` on a free port, with a 2 s first sign-in backoff and accounts."""
    database_url = f"sqlite:///{specfleet_home / 'specfleet.db'}"
    engine = make_engine(database_url)
    ensure_schema(engine)
    create_account(engine, "olivia", "owner", [OWNER_A], PASSWORD, "setup")
    create_account(engine, "pia", "platform", [], PASSWORD, "setup")
    create_account(engine, "vic", "viewer", [], PASSWORD, "setup")
    tokens = {
        name: issue_token(engine, name, "setup", label=f"{name}'s laptop")
        for name in ("olivia", "pia", "vic")
    }
    engine.dispose()
    backoff = {"SPECFLEET_LOGIN_BACKOFF_SECONDS": "2"}
    with specfleet_web(specfleet_home, database_url, backoff) as web:
        yield Server(web.url, web.pid, tokens)


def sign_in(page: Page, server: Server, name: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Account").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_pages_carry_a_strict_csp_and_break_none_of_it(browser: Browser, server: Server) -> None:  # noqa: F811
    """Every console page arrives with CSP, frame, nosniff and referrer headers, and the
    browser reports no CSP violation on any of them (no inline script or style)."""
    page = browser.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    sign_in(page, server, "pia")
    expect(page.get_by_role("link", name="Accounts")).to_be_visible()
    for path in ("/", "/merge-requests", "/policies", "/policies/compliance", "/register",
                 "/account", "/login"):  # fmt: skip
        response = page.goto(server.url + path)
        assert response is not None
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert violations == []


def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    browser: Browser,  # noqa: F811
    server: Server,
) -> None:
    """Olivia signs out; a second browser given her cookie from before is sent to sign in."""
    mine = browser.new_context()
    page = mine.new_page()
    sign_in(page, server, "olivia")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    copied = mine.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    thief = browser.new_context()
    thief.add_cookies(copied)  # type: ignore[arg-type]
    stolen = thief.new_page()
    stolen.goto(server.url + "/")
    expect(stolen.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sign_in_is_throttled_then_works_after_the_backoff(
    browser: Browser,  # noqa: F811
    server: Server,
) -> None:
    """Five wrong passwords say so; the sixth try is refused as too many (429); after the
    backoff the right password signs in."""
    page = browser.new_page()
    for attempt in range(5):
        sign_in(page, server, "olivia", f"wrong {attempt}")
        expect(page.get_by_role("alert")).to_have_text("Unknown account or wrong password.")
    statuses: list[int] = []
    page.on(
        "response", lambda response: statuses.append(response.status) if response.request.method == "POST" else None
    )  # fmt: skip
    sign_in(page, server, "olivia")
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    assert statuses[-1] == 429
    time.sleep(2.5)
    sign_in(page, server, "olivia")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_credentials_page_lists_and_revokes_tokens(browser: Browser, server: Server) -> None:  # noqa: F811
    """Olivia sees her token (name, scopes, last used) and this session; revoking the token
    makes the API refuse it at once."""
    api = f"{server.url}/api/v1/me"
    token = {"Authorization": f"Bearer {server.tokens['olivia']}"}
    assert httpx.get(api, headers=token).status_code == 200
    page = browser.new_page()
    sign_in(page, server, "olivia")
    page.get_by_role("link", name="Credentials").click()
    tokens = page.locator("table.tokens tbody tr")
    expect(tokens).to_have_count(1)
    expect(tokens.first).to_contain_text("olivia's laptop")
    expect(tokens.first).to_contain_text("read, write")
    expect(page.locator("table.sessions")).to_contain_text("this one")
    expect(page.get_by_text("pia's laptop")).to_have_count(0)  # only her own
    tokens.first.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Done: revoked.")
    expect(tokens.first).to_contain_text("revoked")
    assert httpx.get(api, headers=token).status_code == 401


def peak_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


def upload(server: Server, token: str, total: int, chunked: bool) -> int:
    """POST ``total`` bytes to the import endpoint over a raw socket, stopping as soon as the
    server answers; returns the status code."""
    host, port = server.url.removeprefix("http://").split(":")
    boundary = "specfleetboundary"
    head = (
        f"POST /api/v1/products/import HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n")
        + "\r\n"
    ).encode()
    chunk = b"x" * (1024 * 1024)
    # a real multipart part, so that the body is a file being streamed, not garbage refused
    # by the parser at its first bytes
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.yaml"\r\n'
        "Content-Type: application/yaml\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head)
        sent = 0
        while sent < total:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break  # the server answered before the body was done
            piece = preamble + chunk if sent == 0 else chunk
            data = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            try:
                connection.sendall(data)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break  # the server stopped reading: its answer is waiting
            sent += len(chunk)
        answer = b""
        while b"\r\n" not in answer:
            answer += connection.recv(65536)
    return int(answer.split(b" ", 2)[1])


def test_a_100_mb_upload_by_a_viewer_is_refused_without_memory_growth(server: Server) -> None:
    """A viewer streaming 100 MB (chunked, no length) gets 403 and the server's peak memory
    grows by less than 10 MB; a platform user's declared or streamed 100 MB gets 413, also
    without growth."""
    hundred_mb = 100 * 1024 * 1024
    upload(server, server.tokens["vic"], 1024, chunked=True)  # warm the route up
    before = peak_rss_kb(server.pid)
    assert upload(server, server.tokens["vic"], hundred_mb, chunked=True) == 403
    assert upload(server, server.tokens["pia"], hundred_mb, chunked=False) == 413
    assert upload(server, server.tokens["pia"], hundred_mb, chunked=True) == 413
    growth_mb = (peak_rss_kb(server.pid) - before) / 1024
    assert growth_mb < 10, f"peak memory grew by {growth_mb:.1f} MB"
