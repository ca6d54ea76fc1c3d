"""Who is asking: local accounts, API tokens, signed sessions and CSRF tokens.

Passwords and API tokens are kept only as salted scrypt hashes. A browser session is a signed
cookie (HttpOnly, SameSite=Lax) carrying the account id and the session's CSRF token; every
form POST must echo that token. The API takes ``Authorization: Bearer <token>`` and no cookies,
so it needs no CSRF token.

Everything downstream sees an :class:`Identity`, never an account row or a token: an OIDC login
added later is one more :class:`IdentitySource` that maps a verified ID token onto an account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.requests import Request

from core.db import Account, ApiToken, AuditEntry, session_scope
from core.db.accounts import ROLES
from core.db.types import utcnow
from core.errors import InputError, SpecfleetError

Role = Literal["platform", "architect", "owner", "viewer"]

SESSION_COOKIE = "specfleet_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TOKEN_PREFIX = "sft_"  # noqa: S105 - a public prefix that marks specfleet tokens
# scrypt at n=2**14, r=8 costs ~16 MiB and tens of milliseconds: cheap for one login,
# expensive for a guesser; verified API tokens are remembered so repeated calls stay fast
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_VERIFIED_LIMIT = 1024


class AuthError(SpecfleetError):
    """Nobody (or nobody valid) is signed in: 401 for the API, the login page for people."""


class PermissionDenied(SpecfleetError):
    """The signed-in identity may not do this (a role or ownership refuses it): 403."""


class CsrfError(PermissionDenied):
    """A form POST without the session's CSRF token (a forged or stale form): 403."""


@dataclass(frozen=True)
class Identity:
    """A signed-in person or program, however they proved it."""

    account_id: int
    name: str
    role: Role
    emails: tuple[str, ...]
    via: Literal["session", "token", "oidc"]
    csrf_token: str | None = None  # sessions only

    def owns(self, owners: list[str] | tuple[str, ...]) -> bool:
        """Whether one of this identity's addresses is among a product's owners."""
        mine = {email.lower() for email in self.emails}
        return any(owner.lower() in mine for owner in owners)


class IdentitySource(Protocol):
    """One way of proving who is asking (session cookie, bearer token, later OIDC)."""

    def identify(self, request: Request) -> Identity | None: ...


# -- hashing -------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    """A salted scrypt hash of a password or token, self-describing for later upgrades."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return "$".join(
        [
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_secret(secret: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            secret.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


# -- accounts and tokens -------------------------------------------------------------------


def create_account(
    engine: Engine,
    name: str,
    role: str,
    emails: list[str],
    password: str | None,
    actor: str,
) -> Account:
    """A new account (or the existing one with that name updated: role, emails, password)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InputError("an account name must have 1 to 200 characters")
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "owner" and not emails:
        raise InputError("an owner account needs --owner-of EMAIL (the products' owner address)")
    for email in emails:
        if "@" not in email or len(email) > 254:
            raise InputError(f"{email!r} is not an e-mail address")
    if password is not None and len(password) < 8:
        raise InputError("a password needs at least 8 characters")
    with session_scope(engine) as session:
        account = session.exec(select(Account).where(Account.name == name)).first()
        action = "account.updated" if account else "account.created"
        if account is None:
            account = Account(name=name, role=role, emails=emails)
        account.role = role
        account.emails = list(dict.fromkeys(emails))
        account.disabled = False
        if password is not None:
            account.password_hash = hash_secret(password)
        session.add(account)
        session.flush()
        session.add(
            AuditEntry(
                actor=actor,
                action=action,
                subject_type="account",
                subject_id=name,
                detail={"role": role, "emails": account.emails},
            )
        )
    return account


def issue_token(engine: Engine, name: str, actor: str) -> str:
    """A new API token for account ``name``; the plain token exists only in the return value."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        account = session.exec(select(Account).where(Account.name == name)).first()
        if account is None:
            raise InputError(f"no account {name!r}; create it with specfleet user add")
        assert account.id is not None
        session.add(ApiToken(key_id=key_id, token_hash=hash_secret(secret), account_id=account.id))
        session.add(
            AuditEntry(
                actor=actor,
                action="token.issued",
                subject_type="account",
                subject_id=name,
                detail={"key_id": key_id},
            )
        )
    return f"{TOKEN_PREFIX}{key_id}_{secret}"


def identity_of(account: Account, via: Literal["session", "token", "oidc"]) -> Identity:
    assert account.id is not None
    return Identity(
        account_id=account.id,
        name=account.name,
        role=account.role,  # type: ignore[arg-type]
        emails=tuple(account.emails),
        via=via,
    )


def check_password(engine: Engine, name: str, password: str) -> Identity | None:
    """The account's identity when the password matches an enabled account, else None."""
    with Session(engine) as session:
        account = session.exec(select(Account).where(Account.name == name.strip())).first()
    if account is None or account.disabled:
        # the same work either way, so timing does not tell which names exist
        verify_secret(password, _DUMMY_HASH)
        return None
    if not verify_secret(password, account.password_hash):
        return None
    return identity_of(account, "session")


_DUMMY_HASH = hash_secret(secrets.token_hex(8))


class TokenSource:
    """``Authorization: Bearer sft_<key id>_<secret>`` checked against the stored hash."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._verified: OrderedDict[str, bytes] = OrderedDict()

    def identify(self, request: Request) -> Identity | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.check(token.strip())

    def check(self, token: str) -> Identity | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        key_id, _, secret = token[len(TOKEN_PREFIX) :].partition("_")
        if not key_id or not secret or len(token) > 200:
            return None
        with session_scope(self.engine) as session:
            row = session.exec(select(ApiToken).where(ApiToken.key_id == key_id)).first()
            if row is None or row.revoked_at is not None:
                return None
            account = session.get(Account, row.account_id)
            if account is None or account.disabled:
                return None
            fingerprint = hashlib.sha256(token.encode()).digest()
            remembered = self._verified.get(key_id)
            if remembered is None or not hmac.compare_digest(remembered, fingerprint):
                if not verify_secret(secret, row.token_hash):
                    return None
                self._verified[key_id] = fingerprint
                while len(self._verified) > _VERIFIED_LIMIT:
                    self._verified.popitem(last=False)
            now = utcnow()
            # a write per call would serialise the API on SQLite; minute precision is enough
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
                session.add(row)
            return identity_of(account, "token")


class SessionSource:
    """The signed session cookie: account id and CSRF token, valid for 12 hours."""

    def __init__(self, engine: Engine, secret_key: str) -> None:
        self.engine = engine
        self.serializer = URLSafeTimedSerializer(secret_key, salt="specfleet-session")

    def read(self, request: Request) -> dict[str, object]:
        """The cookie's payload, or an empty one when absent, tampered with or expired."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return {}
        try:
            payload = self.serializer.loads(raw, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return {}
        return payload if isinstance(payload, dict) else {}

    def dump(self, payload: dict[str, object]) -> str:
        return self.serializer.dumps(payload)

    def identify(self, request: Request) -> Identity | None:
        payload = self.read(request)
        account_id = payload.get("a")
        if not isinstance(account_id, int):
            return None
        with Session(self.engine) as session:
            account = session.get(Account, account_id)
        if account is None or account.disabled:
            return None
        csrf = payload.get("c")
        identity = identity_of(account, "session")
        return Identity(
            identity.account_id,
            identity.name,
            identity.role,
            identity.emails,
            "session",
            csrf if isinstance(csrf, str) else None,
        )


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def secret_key(home: Path) -> str:
    """The key that signs session cookies: SPECFLEET_WEB_SECRET, else one kept under home.

    Several web processes (fleet mode) must share it, hence the variable; the embedded default
    creates a random one once, readable only by its owner.
    """
    explicit = os.environ.get("SPECFLEET_WEB_SECRET")
    if explicit:
        return explicit
    path = home / "web-secret"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    return value
