"""Console and API security: headers, sessions that end, revocable tokens, sign-in throttling,
bodies judged before they are read."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import ApiToken, AuditEntry, session_scope
from specfleet.core.settings import Settings
from specfleet.web.app import create_app
from specfleet.web.auth import issue_token
from specfleet.web.credentials import change_password, end_session, revoke_tokens, set_disabled
from tests.ui.web.conftest import PASSWORD, Accounts, bearer, csrf_of, login, settings_for


def app_with(engine: Engine, home: Path, **overrides: object) -> TestClient:
    base = settings_for(engine, home)
    return TestClient(create_app(Settings(**{**base.model_dump(), **overrides})))


def audit_actions(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [row.action for row in session.exec(select(AuditEntry)).all()]


def assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, response.url
    assert "unsafe-inline" not in csp
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "same-origin"
    assert response.headers.get("x-frame-options") == "DENY"


def test_every_page_and_api_response_carries_security_headers(
    client: TestClient, accounts: Accounts
) -> None:
    """Pages, API answers, errors, static files and health all carry CSP, nosniff, referrer and
    frame headers; HSTS only over HTTPS."""
    anonymous = [
        client.get("/login"),
        client.get("/healthz"),
        client.get("/static/htmx.min.js"),
        client.get("/api/v1/products"),  # 401
        client.get("/api/v1/openapi.json"),
        client.get("/", follow_redirects=False),  # 303 to login
    ]
    api = [
        client.get("/api/v1/me", headers=bearer(accounts, "viewer")),
        client.get("/api/v1/nothing-here", headers=bearer(accounts, "viewer")),
    ]
    login(client, "viewer")
    pages = [client.get("/"), client.get("/merge-requests"), client.get("/account")]
    for response in anonymous + api + pages:
        assert_security_headers(response)
        assert "strict-transport-security" not in response.headers
    assert [r.status_code for r in pages] == [200, 200, 200]
    secure = TestClient(client.app, base_url="https://testserver")
    assert "max-age=" in secure.get("/login").headers["strict-transport-security"]


def test_login_page_shows_only_its_own_messages(client: TestClient) -> None:
    """A link cannot make the login page say something: ?error= and unknown notices are ignored."""
    page = client.get("/login?error=Your+account+is+locked,+call+0800-CROOK&notice=x")
    assert page.status_code == 200
    assert "CROOK" not in page.text
    assert "You are signed out." in client.get("/login?notice=signed-out").text


def test_a_cookie_copied_before_logout_is_refused_after_it(
    client: TestClient, engine: Engine
) -> None:
    """Logging out ends the session on the server: a copy of the cookie no longer signs in."""
    csrf = login(client, "owner-a")
    copied = dict(client.cookies)
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?notice=signed-out"
    thief = TestClient(client.app, cookies=copied)
    after = thief.get("/", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    assert "session.logout" in audit_actions(engine)


def test_password_change_disable_and_end_all_sessions_end_cookies(
    client: TestClient, engine: Engine
) -> None:
    """Each of passwd, disable and "end all sessions" moves the account's session generation:
    a signed-in browser is sent to the login page at its next request."""
    for action in (
        lambda: change_password(engine, "architect", PASSWORD, "admin"),
        lambda: set_disabled(engine, "architect", True, "admin"),
        lambda: end_session(engine, "architect", None, "admin"),
    ):
        set_disabled(engine, "architect", False, "admin")
        browser = TestClient(client.app)
        login(browser, "architect")
        assert browser.get("/", follow_redirects=False).status_code == 200
        action()
        assert browser.get("/", follow_redirects=False).status_code == 303
    actions = audit_actions(engine)
    assert {"account.password_changed", "account.disabled", "session.ended"} <= set(actions)


def test_revoked_disabled_expired_and_read_only_tokens(
    client: TestClient, engine: Engine, accounts: Accounts
) -> None:
    """A revoked token or a disabled account's token gets 401 at the next request; enabling
    the account brings its unrevoked tokens back; an expired token is 401; a read-only token
    may GET but not POST."""
    me = "/api/v1/me"
    platform = bearer(accounts, "platform")
    assert client.get(me, headers=platform).status_code == 200
    set_disabled(engine, "platform", True, "admin")
    refused = client.get(me, headers=platform)
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]
    set_disabled(engine, "platform", False, "admin")
    assert client.get(me, headers=platform).status_code == 200
    key_id = accounts.tokens["platform"].split("_")[1]
    assert revoke_tokens(engine, "platform", key_id, "admin") == 1
    assert client.get(me, headers=platform).status_code == 401

    expiring = issue_token(engine, "viewer", "admin", "ci", expires_days=1)
    with session_scope(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.name == "ci")).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.add(row)
    assert client.get(me, headers={"Authorization": f"Bearer {expiring}"}).status_code == 401

    reader = issue_token(engine, "owner-a", "admin", "dashboard", scopes=("read",))
    headers = {"Authorization": f"Bearer {reader}"}
    assert client.get("/api/v1/products", headers=headers).status_code == 200
    post = client.post("/api/v1/products/x/evaluations", headers=headers)
    assert post.status_code == 403 and "read-only" in post.json()["message"]
    assert {"token.revoked", "account.disabled", "account.enabled"} <= set(audit_actions(engine))


def test_sixth_wrong_password_gets_429_and_the_right_one_works_after_the_backoff(
    engine: Engine, specfleet_home: Path, accounts: Accounts
) -> None:
    """Five wrong passwords are 401; the sixth attempt within the backoff is 429 with
    Retry-After (even with the right password, which is not checked); after waiting, the
    right password signs in; the throttling is in the audit log."""
    client = app_with(engine, specfleet_home, login_backoff_seconds=2.0)
    csrf = csrf_of(client.get("/login").text)

    def attempt(password: str):  # type: ignore[no-untyped-def]
        return client.post(
            "/login",
            data={"name": "owner-b", "password": password, "csrf_token": csrf, "next": "/"},
            follow_redirects=False,
        )

    assert [attempt(f"wrong {n}").status_code for n in range(5)] == [401] * 5
    sixth = attempt("wrong again")
    assert sixth.status_code == 429
    wait = int(sixth.headers["retry-after"])
    assert 1 <= wait <= 2
    assert "Too many failed sign-ins" in sixth.text
    assert attempt(PASSWORD).status_code == 429
    time.sleep(wait + 0.2)
    assert attempt(PASSWORD).status_code == 303
    actions = audit_actions(engine)
    assert actions.count("session.login_failed") == 5 and "session.throttled" in actions


def test_guessing_an_owners_password_does_not_lock_the_owner_out(
    engine: Engine, specfleet_home: Path, accounts: Accounts
) -> None:
    """Failures from elsewhere throttle guesses at the name, but the owner's browser, which
    signed in before (device cookie), still signs in from its own address."""
    app = app_with(engine, specfleet_home).app
    owner = TestClient(app, client=("10.0.0.1", 1000))
    csrf = login(owner, "owner-a")
    owner.post("/logout", data={"csrf_token": csrf})
    for number in range(3):  # several attackers, each under the per-address limit
        attacker = TestClient(app, client=(f"10.0.1.{number}", 1000))
        token = csrf_of(attacker.get("/login").text)
        for guess in range(4):
            attacker.post(
                "/login",
                data={"name": "owner-a", "password": f"guess {guess}", "csrf_token": token},
            )
    stranger = TestClient(app, client=("10.0.2.1", 1000))
    token = csrf_of(stranger.get("/login").text)
    blocked = stranger.post(
        "/login", data={"name": "owner-a", "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429  # the name is throttled for unknown browsers
    login(owner, "owner-a")  # the owner's browser is not
    assert (
        owner.get("/?view=fleet", follow_redirects=False).status_code == 200
    )  # signed in (owners land on /waiting)


def test_bodies_are_judged_before_they_are_read(
    engine: Engine, specfleet_home: Path, accounts: Accounts
) -> None:
    """No token: 401; a viewer's upload: 403; a platform upload over the cap: 413 (declared or
    streamed); a JSON body over its cap: 413; all before the routes read anything."""
    client = app_with(engine, specfleet_home, upload_max_bytes=50_000, body_max_bytes=2_000)
    upload = {"file": ("products.yaml", b"x" * 60_000, "application/yaml")}
    assert client.post("/api/v1/products/import", files=upload).status_code == 401
    viewer = client.post(
        "/api/v1/products/import", files=upload, headers=bearer(accounts, "viewer")
    )
    assert viewer.status_code == 403 and "platform" in viewer.json()["message"]
    platform = bearer(accounts, "platform")
    declared = client.post("/api/v1/products/import", files=upload, headers=platform)
    assert declared.status_code == 413 and "50000 bytes" in declared.json()["message"]

    def chunks():  # no Content-Length: the cap is counted while streaming
        for _ in range(10):
            yield b"y" * 10_000

    streamed = client.post(
        "/api/v1/products/import",
        content=chunks(),
        headers={**platform, "content-type": "multipart/form-data; boundary=zz"},
    )
    assert streamed.status_code == 413
    big_json = client.post("/api/v1/products", json={"repo": "x" * 5_000}, headers=platform)
    assert big_json.status_code == 413
    login(client, "viewer")
    form = client.post("/register/import", files=upload)
    assert form.status_code == 403


def test_registration_pointing_at_a_loopback_port_is_refused_without_connecting(
    client: TestClient, accounts: Accounts
) -> None:
    """A platform user registering http://127.0.0.1:PORT gets 400 naming SPECFLEET_REPO_ALLOW,
    and the listening port never sees a connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        response = client.post(
            "/api/v1/products",
            json={"repo": f"http://127.0.0.1:{port}/group/orders.git"},
            headers=bearer(accounts, "platform"),
        )
        assert response.status_code == 400, response.text
        assert "SPECFLEET_REPO_ALLOW" in response.json()["message"]
        with pytest.raises(BlockingIOError):
            listener.accept()
