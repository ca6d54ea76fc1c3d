"""``specfleet user add`` and ``specfleet user token`` through the installed entry point."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from specfleet.core.db import Account, ApiToken, AuditEntry, make_engine
from specfleet.core.settings import get_settings
from specfleet.web.app import create_app
from tests.conftest import SPECFLEET


def specfleet(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SPECFLEET, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def test_user_add_and_token_give_a_working_api_token(specfleet_home: Path) -> None:
    """An owner account created with a password from stdin gets a token printed once; the
    token opens the API and only its hash is stored."""
    added = specfleet(
        "user", "add", "olivia", "--role", "owner", "--owner-of", "o@example.com",
        "--password-stdin", stdin="a long password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "account olivia (owner), owner of o@example.com" in added.stdout
    issued = specfleet("user", "token", "olivia")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("sft_") and "\n" not in token
    engine = make_engine(get_settings().resolved_database_url)
    with Session(engine) as session:
        account = session.exec(select(Account)).one()
        stored = session.exec(select(ApiToken)).one()
    assert account.password_hash and "a long password" not in account.password_hash
    assert token.split("_", 2)[2] not in stored.token_hash
    client = TestClient(create_app(get_settings()))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"name": "olivia", "role": "owner", "emails": ["o@example.com"]}


def test_user_add_refuses_bad_input(specfleet_home: Path) -> None:
    """An unknown role, an owner without an address, a short password: exit 2 with a reason."""
    role = specfleet("user", "add", "x", "--role", "admin")
    assert role.returncode == 2 and "unknown role 'admin'" in role.stderr
    owner = specfleet("user", "add", "x", "--role", "owner")
    assert owner.returncode == 2 and "--owner-of" in owner.stderr
    short = specfleet("user", "add", "x", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    missing = specfleet("user", "token", "nobody")
    assert missing.returncode == 2 and "no account 'nobody'" in missing.stderr


def test_user_tokens_revoke_disable_enable_and_passwd(specfleet_home: Path) -> None:
    """A named, expiring token is listed with its scopes; revoking it (or --all) and disabling
    the account make the API refuse at the next request; enable brings unrevoked tokens back;
    passwd reads stdin and ends sessions; each is in the audit log."""
    assert specfleet("user", "add", "ci", "--role", "viewer").returncode == 0
    first = specfleet("user", "token", "ci", "--name", "nightly", "--expires", "30").stdout.strip()
    second = specfleet("user", "token", "ci", "--read-only").stdout.strip()
    listed = specfleet("user", "tokens", "ci")
    assert listed.returncode == 0, listed.stderr
    key_id = first.split("_")[1]
    assert key_id in listed.stdout and "nightly" in listed.stdout
    assert "read,write" in listed.stdout and "read " in listed.stdout
    assert first not in listed.stdout  # the secret is never shown again
    client = TestClient(create_app(get_settings()))

    def status(token: str) -> int:
        return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code

    assert (status(first), status(second)) == (200, 200)
    assert specfleet("user", "revoke", "ci", key_id).returncode == 0
    assert (status(first), status(second)) == (401, 200)
    assert "revoked" in specfleet("user", "tokens", "ci").stdout
    assert specfleet("user", "disable", "ci").returncode == 0
    assert status(second) == 401
    assert specfleet("user", "enable", "ci").returncode == 0
    assert status(second) == 200
    both = specfleet("user", "revoke", "ci", key_id, "--all")
    assert both.returncode == 2 and "not both" in both.stderr
    assert specfleet("user", "revoke", "ci", "--all").stdout.startswith("revoked 1 token")
    assert status(second) == 401
    changed = specfleet("user", "passwd", "ci", stdin="a new long password\n")
    assert changed.returncode == 0 and "0 session(s) ended" in changed.stdout
    short = specfleet("user", "passwd", "ci", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr
    engine = make_engine(get_settings().resolved_database_url)
    with Session(engine) as session:
        actions = {row.action for row in session.exec(select(AuditEntry)).all()}
    assert {
        "token.issued",
        "token.revoked",
        "account.disabled",
        "account.enabled",
        "account.password_changed",
    } <= actions
