"""People and programs that use the web console and its API: accounts and API tokens.

An account has one role (``platform``, ``architect``, ``owner``, ``viewer``) and the e-mail
addresses that match it to products' ``owners``. Passwords and API tokens are stored only as
salted scrypt hashes. An identity from an external login (OIDC) maps onto an account by name
or e-mail, so this table stays the one place roles are kept.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from specfleet.core.db.types import JsonColumnType, UTCDateTime, utcnow

ROLES = ("platform", "architect", "owner", "viewer")


class Account(SQLModel, table=True):
    """A person (or service) who signs in to the console or calls the API."""

    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True, index=True)
    role: str = Field(max_length=16, description="platform, architect, owner or viewer.")
    emails: list[str] = Field(
        default_factory=list,
        sa_column=Column(JsonColumnType, nullable=False),
        description="Addresses matched against products' owners.",
    )
    password_hash: str | None = Field(default=None, max_length=300)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    disabled: bool = Field(default=False)
    # bumped by disable, password change and "end every session": a session cookie carries the
    # generation it was issued under and is refused once the account's has moved on
    session_generation: int = Field(default=0)


class ApiToken(SQLModel, table=True):
    """A bearer token for the JSON API; only its public key id and a salted hash are kept."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=32, unique=True, index=True)
    token_hash: str = Field(max_length=300)
    account_id: int = Field(foreign_key="account.id", index=True)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    last_used_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    revoked_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    name: str = Field(default="", max_length=100, description="What the token is for.")
    expires_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["read", "write"],
        sa_column=Column(JsonColumnType, nullable=False),
        description="read (GET only) and/or write.",
    )


class WebSession(SQLModel, table=True):
    """A browser session: the cookie names it by a random key whose hash is kept here, so
    logging out (or an administrator) ends it on the server, not just in the browser."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    generation: int = Field(default=0)
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    last_seen_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    ended_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    client: str = Field(default="", max_length=64, description="Client address at sign-in.")
    user_agent: str = Field(default="", max_length=200)


class SignInThrottle(SQLModel, table=True):
    """Recent failed sign-ins for one key (an account, a client address or a known device)."""

    __tablename__ = "sign_in_throttle"

    key: str = Field(primary_key=True, max_length=300)
    failures: int = Field(default=0)
    last_failure_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
