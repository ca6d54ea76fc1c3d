"""Sign-in throttling: exponential backoff per account and per client address, no lock-out.

Each failed sign-in counts against two keys: the client address, and the account name - or,
when the browser shows a device cookie from an earlier successful sign-in to that account, that
device instead. The first ``free`` failures cost nothing; after that a key must wait
``base * 2**(failures - free)`` seconds (at most ``ceiling``) before the next attempt, which is
answered 429 with Retry-After without even checking the password. Failures are forgotten after
``forget`` seconds of quiet.

Why a device key: an attacker guessing an owner's password from many addresses slows down
guesses against that *name*, but the owner's own browser (which signed in before) is judged by
its device key and can still sign in - throttled, never locked out.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, delete

from specfleet.core.db import SignInThrottle, session_scope
from specfleet.core.db.types import utcnow


@dataclass(frozen=True)
class ThrottlePolicy:
    free: int = 5
    base_seconds: float = 30.0
    ceiling_seconds: float = 900.0
    forget_seconds: float = 3600.0


def wait_seconds(
    failures: int, last_failure_at: dt.datetime, now: dt.datetime, policy: ThrottlePolicy
) -> float:
    """How long a key with ``failures`` recent failures must still wait (0: it may try)."""
    elapsed = (now - last_failure_at).total_seconds()
    if failures < policy.free or elapsed >= policy.forget_seconds:
        return 0.0
    backoff = min(policy.base_seconds * 2.0 ** (failures - policy.free), policy.ceiling_seconds)
    return max(0.0, backoff - elapsed)


def counted_failures(
    failures: int, last_failure_at: dt.datetime, now: dt.datetime, policy: ThrottlePolicy
) -> int:
    """The failures still remembered (none after ``forget`` seconds of quiet)."""
    if (now - last_failure_at).total_seconds() >= policy.forget_seconds:
        return 0
    return failures


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def account_key(name: str) -> str:
    return f"account:{name.strip().lower()[:200]}"


def address_key(address: str) -> str:
    return f"address:{address[:64]}"


def device_key(device: str) -> str:
    return f"device:{device[:64]}"


class Throttle:
    """The throttle's state in the database, so every web process sees the same counts."""

    def __init__(self, engine: Engine, policy: ThrottlePolicy) -> None:
        self.engine = engine
        self.policy = policy

    def wait(self, keys: list[str]) -> float:
        """The longest wait any of ``keys`` still owes (0: the attempt may go ahead)."""
        now = utcnow()
        with Session(self.engine) as session:
            rows = [session.get(SignInThrottle, key) for key in keys]
        return max(
            (
                wait_seconds(row.failures, row.last_failure_at, now, self.policy)
                for row in rows
                if row is not None
            ),
            default=0.0,
        )

    def failed(self, keys: list[str]) -> None:
        now = utcnow()
        with session_scope(self.engine) as session:
            for key in keys:
                row = session.get(SignInThrottle, key)
                if row is None:
                    row = SignInThrottle(key=key, failures=0, last_failure_at=now)
                row.failures = (
                    counted_failures(row.failures, row.last_failure_at, now, self.policy) + 1
                )
                row.last_failure_at = now
                session.add(row)

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of the account (or device) that just proved itself."""
        with session_scope(self.engine) as session:
            session.exec(delete(SignInThrottle).where(col(SignInThrottle.key).in_(keys)))
