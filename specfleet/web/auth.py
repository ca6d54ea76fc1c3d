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
import datetime as dt
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

from specfleet.core.db import Account, ApiToken, AuditEntry, WebSession, session_scope
from specfleet.core.db.accounts import ROLES
from specfleet.core.db.types import utcnow
from specfleet.core.errors import InputError, SpecfleetError

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
    scopes: tuple[str, ...] = ("read", "write")  # a read-only token may only GET
    session_id: int | None = None  # the web_session row of a browser session

    @property
    def can_write(self) -> bool:
        return "write" in self.scopes

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


def issue_token(
    engine: Engine,
    name: str,
    actor: str,
    label: str = "",
    expires_days: int | None = None,
    scopes: tuple[str, ...] = ("read", "write"),
) -> str:
    """A new API token for account ``name``; the plain token exists only in the return value."""
    if len(label) > 100:
        raise InputError("a token name has at most 100 characters")
    if expires_days is not None and not 1 <= expires_days <= 3650:
        raise InputError("--expires takes 1 to 3650 days")
    unknown = set(scopes) - {"read", "write"}
    if unknown or not scopes:
        raise InputError("token scopes are read and/or write")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    expires_at = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
    with session_scope(engine) as session:
        account = session.exec(select(Account).where(Account.name == name)).first()
        if account is None:
            raise InputError(f"no account {name!r}; create it with specfleet user add")
        assert account.id is not None
        session.add(
            ApiToken(
                key_id=key_id,
                token_hash=hash_secret(secret),
                account_id=account.id,
                name=label,
                expires_at=expires_at,
                scopes=sorted(set(scopes)),
            )
        )
        session.add(
            AuditEntry(
                actor=actor,
                action="token.issued",
                subject_type="account",
                subject_id=name,
                detail={
                    "key_id": key_id,
                    "name": label,
                    "scopes": sorted(set(scopes)),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
        )
    return f"{TOKEN_PREFIX}{key_id}_{secret}"


def identity_of(
    account: Account,
    via: Literal["session", "token", "oidc"],
    scopes: tuple[str, ...] = ("read", "write"),
    csrf_token: str | None = None,
    session_id: int | None = None,
) -> Identity:
    assert account.id is not None
    return Identity(
        account_id=account.id,
        name=account.name,
        role=account.role,  # type: ignore[arg-type]
        emails=tuple(account.emails),
        via=via,
        csrf_token=csrf_token,
        scopes=scopes,
        session_id=session_id,
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
            now = utcnow()
            if row is None or not token_usable(row.revoked_at, row.expires_at, now):
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
            # a write per call would serialise the API on SQLite; minute precision is enough
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
                row.last_used_at = now
                session.add(row)
            return identity_of(account, "token", scopes=tuple(row.scopes))


def token_usable(
    revoked_at: dt.datetime | None, expires_at: dt.datetime | None, now: dt.datetime
) -> bool:
    return revoked_at is None and (expires_at is None or now < expires_at)


def session_valid(row: WebSession | None, account: Account | None) -> bool:
    """A session counts while it was not ended and its account's generation has not moved."""
    return (
        row is not None
        and account is not None
        and row.ended_at is None
        and not account.disabled
        and row.generation == account.session_generation
    )


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SessionSource:
    """The signed session cookie names a server-side session row (and carries the CSRF token).

    The row is checked on every request: logging out ends it, and disabling the account,
    changing its password or ending all its sessions moves the account's session generation,
    so a copied cookie stops working at once rather than after its 12 hours.
    """

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

    def start(self, identity: Identity, request: Request) -> str:
        """A new server-side session for ``identity``; returns the cookie value naming it."""
        key = secrets.token_urlsafe(32)
        client = request.client.host if request.client else ""
        with session_scope(self.engine) as session:
            account = session.get(Account, identity.account_id)
            assert account is not None
            session.add(
                WebSession(
                    key_hash=key_digest(key),
                    account_id=identity.account_id,
                    generation=account.session_generation,
                    client=client[:64],
                    user_agent=request.headers.get("user-agent", "")[:200],
                )
            )
        # a new CSRF token per session: one seen before signing in is worth nothing after
        return self.dump({"s": key, "c": new_csrf_token()})

    def end(self, request: Request) -> None:
        """End the session the request's cookie names (logging out)."""
        key = self.read(request).get("s")
        if not isinstance(key, str):
            return
        with session_scope(self.engine) as session:
            row = session.exec(
                select(WebSession).where(WebSession.key_hash == key_digest(key))
            ).first()
            if row is not None and row.ended_at is None:
                row.ended_at = utcnow()
                session.add(row)

    def identify(self, request: Request) -> Identity | None:
        # the body guard and the route both ask: one database look-up per request
        if hasattr(request.state, "session_identity"):
            cached: Identity | None = request.state.session_identity
            return cached
        identity = self._identify(request)
        request.state.session_identity = identity
        return identity

    def _identify(self, request: Request) -> Identity | None:
        payload = self.read(request)
        key = payload.get("s")
        if not isinstance(key, str):
            return None
        with session_scope(self.engine) as session:
            row = session.exec(
                select(WebSession).where(WebSession.key_hash == key_digest(key))
            ).first()
            account = session.get(Account, row.account_id) if row is not None else None
            if not session_valid(row, account):
                return None
            assert row is not None and account is not None
            now = utcnow()
            # minute precision is enough for "last seen" and spares a write per request
            if (now - row.last_seen_at).total_seconds() > 60:
                row.last_seen_at = now
                session.add(row)
            csrf = payload.get("c")
            return identity_of(
                account,
                "session",
                csrf_token=csrf if isinstance(csrf, str) else None,
                session_id=row.id,
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
