"""Pausing the fleet: whether the scheduler may enqueue evaluations right now.

A pause is an audit entry (``fleet.pause`` / ``fleet.resume`` on the subject ``fleet``), so the
state and its history are one record: who paused, when and why. The latest such entry decides.
Pausing stops new fan-outs (weekly windows, policy publications); evaluations already queued
or running finish, and a window fanned out again after ``resume`` picks up where it stopped
because evaluations are keyed by product, window and fingerprint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import AuditEntry, session_scope

PAUSE = "fleet.pause"
RESUME = "fleet.resume"
SUBJECT_TYPE = "fleet"
SUBJECT_ID = "fleet"


@dataclass(frozen=True)
class FleetEvent:
    """One pause or resume as recorded in the audit log."""

    action: str
    actor: str
    at: dt.datetime
    reason: str | None = None


@dataclass(frozen=True)
class Pause:
    """The fleet is paused: by whom, since when, and why."""

    actor: str
    since: dt.datetime
    reason: str | None = None


def current_pause(events: Iterable[FleetEvent]) -> Pause | None:
    """The pause in force after these events, or None when the fleet runs.

    The latest event decides; events with the same time are taken in the order given (the
    order they were recorded in).
    """
    relevant = [event for event in events if event.action in (PAUSE, RESUME)]
    if not relevant:
        return None
    _, latest = max(enumerate(relevant), key=lambda pair: (pair[1].at, pair[0]))
    if latest.action == RESUME:
        return None
    return Pause(actor=latest.actor, since=latest.at, reason=latest.reason)


def _reason(detail: dict[str, Any] | None) -> str | None:
    value = (detail or {}).get("reason")
    return str(value) if value else None


def fleet_paused(engine: Engine) -> Pause | None:
    """The pause in force, read from the audit log; None when the fleet runs."""
    with session_scope(engine) as session:
        entry = session.exec(
            select(AuditEntry)
            .where(AuditEntry.subject_type == SUBJECT_TYPE)
            .where(AuditEntry.subject_id == SUBJECT_ID)
            .where(col(AuditEntry.action).in_((PAUSE, RESUME)))
            .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
            .limit(1)
        ).first()
    if entry is None:
        return None
    return current_pause([FleetEvent(entry.action, entry.actor, entry.at, _reason(entry.detail))])


def _record(engine: Engine, action: str, actor: str, reason: str | None) -> FleetEvent:
    entry = AuditEntry(
        actor=actor,
        action=action,
        subject_type=SUBJECT_TYPE,
        subject_id=SUBJECT_ID,
        detail={"reason": reason} if reason else {},
    )
    with session_scope(engine) as session:
        session.add(entry)
        session.flush()
        return FleetEvent(entry.action, entry.actor, entry.at, reason)


def pause_fleet(engine: Engine, actor: str, reason: str | None = None) -> tuple[Pause, bool]:
    """Pause the fleet; (the pause in force, whether this call paused it).

    Pausing a paused fleet records nothing: the first pause, its actor and reason stand.
    """
    existing = fleet_paused(engine)
    if existing is not None:
        return existing, False
    event = _record(engine, PAUSE, actor, reason)
    return Pause(actor=event.actor, since=event.at, reason=event.reason), True


def resume_fleet(engine: Engine, actor: str) -> Pause | None:
    """Resume the fleet; the pause that was lifted, or None when it was not paused."""
    existing = fleet_paused(engine)
    if existing is None:
        return None
    _record(engine, RESUME, actor, None)
    return existing
