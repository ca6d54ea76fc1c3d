"""Taking credentials back: list and revoke API tokens, disable accounts, change passwords,
end sessions. Every change is an audit entry; every one that ends sessions moves the
account's session generation, which :class:`specfleet.web.auth.SessionSource` checks per request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import Account, ApiToken, AuditEntry, WebSession, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import InputError
from specfleet.web.auth import hash_secret, token_usable


@dataclass(frozen=True)
class TokenRow:
    key_id: str
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    scopes: tuple[str, ...]

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if not token_usable(None, self.expires_at, utcnow()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class SessionRow:
    id: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    client: str
    user_agent: str


@dataclass(frozen=True)
class AccountRow:
    name: str
    role: str
    disabled: bool
    tokens: tuple[TokenRow, ...]
    sessions: tuple[SessionRow, ...]


def _account(session: Session, name: str) -> Account:
    account = session.exec(select(Account).where(Account.name == name.strip())).first()
    if account is None:
        raise InputError(f"no account {name!r}; see specfleet user add")
    return account


def _audit(session: Session, actor: str, action: str, name: str, **detail: object) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            subject_type="account",
            subject_id=name,
            detail=detail or None,
        )
    )


def _end_sessions(session: Session, account: Account) -> int:
    """End every open session of ``account`` (rows and generation both, belt and braces)."""
    account.session_generation += 1
    session.add(account)
    rows = session.exec(
        select(WebSession).where(
            WebSession.account_id == account.id, col(WebSession.ended_at).is_(None)
        )
    ).all()
    now = utcnow()
    for row in rows:
        row.ended_at = now
        session.add(row)
    return len(rows)


def list_tokens(engine: Engine, name: str) -> list[TokenRow]:
    with Session(engine) as session:
        account = _account(session, name)
        rows = session.exec(
            select(ApiToken).where(ApiToken.account_id == account.id).order_by(col(ApiToken.id))
        ).all()
    return [
        TokenRow(
            key_id=row.key_id,
            name=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            scopes=tuple(row.scopes),
        )
        for row in rows
    ]


def list_sessions(engine: Engine, name: str) -> list[SessionRow]:
    """The account's open browser sessions (ended ones and those of an old generation left out)."""
    with Session(engine) as session:
        account = _account(session, name)
        rows = session.exec(
            select(WebSession)
            .where(
                WebSession.account_id == account.id,
                col(WebSession.ended_at).is_(None),
                WebSession.generation == account.session_generation,
            )
            .order_by(col(WebSession.id))
        ).all()
    return [
        SessionRow(
            id=row.id or 0,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            client=row.client,
            user_agent=row.user_agent,
        )
        for row in rows
    ]


def list_accounts(engine: Engine) -> list[AccountRow]:
    """Every account with its tokens and open sessions (the platform role's page)."""
    with Session(engine) as session:
        accounts = session.exec(select(Account).order_by(col(Account.name))).all()
    return [
        AccountRow(
            name=account.name,
            role=account.role,
            disabled=account.disabled,
            tokens=tuple(list_tokens(engine, account.name)),
            sessions=tuple(list_sessions(engine, account.name)),
        )
        for account in accounts
    ]


def revoke_tokens(engine: Engine, name: str, key_id: str | None, actor: str) -> int:
    """Revoke one token (by its id) or, with ``key_id=None``, all of the account's tokens."""
    with session_scope(engine) as session:
        account = _account(session, name)
        query = select(ApiToken).where(
            ApiToken.account_id == account.id, col(ApiToken.revoked_at).is_(None)
        )
        if key_id is not None:
            query = query.where(ApiToken.key_id == key_id.removeprefix("sft_"))
        rows = session.exec(query).all()
        if key_id is not None and not rows:
            raise InputError(
                f"{name} has no active token {key_id!r}; see specfleet user tokens {name}"
            )
        now = utcnow()
        for row in rows:
            row.revoked_at = now
            session.add(row)
        _audit(
            session,
            actor,
            "token.revoked",
            account.name,
            key_ids=[row.key_id for row in rows],
        )
    return len(rows)


def set_disabled(engine: Engine, name: str, disabled: bool, actor: str) -> int:
    """Disable (ending its sessions; its tokens stop working) or enable an account."""
    with session_scope(engine) as session:
        account = _account(session, name)
        account.disabled = disabled
        ended = _end_sessions(session, account) if disabled else 0
        session.add(account)
        _audit(
            session,
            actor,
            "account.disabled" if disabled else "account.enabled",
            account.name,
            sessions_ended=ended,
        )
    return ended


def change_password(engine: Engine, name: str, password: str, actor: str) -> int:
    """Set a new password and end every session the account had."""
    if len(password) < 8:
        raise InputError("a password needs at least 8 characters")
    with session_scope(engine) as session:
        account = _account(session, name)
        account.password_hash = hash_secret(password)
        ended = _end_sessions(session, account)
        _audit(session, actor, "account.password_changed", account.name, sessions_ended=ended)
    return ended


def end_session(engine: Engine, name: str, session_id: int | None, actor: str) -> int:
    """End one of the account's sessions, or all of them with ``session_id=None``."""
    with session_scope(engine) as session:
        account = _account(session, name)
        if session_id is None:
            ended = _end_sessions(session, account)
        else:
            row = session.get(WebSession, session_id)
            if row is None or row.account_id != account.id or row.ended_at is not None:
                raise InputError(f"{name} has no open session {session_id}")
            row.ended_at = utcnow()
            session.add(row)
            ended = 1
        _audit(session, actor, "session.ended", account.name, sessions_ended=ended)
    return ended
