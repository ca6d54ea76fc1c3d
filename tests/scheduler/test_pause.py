"""Fleet pause: the latest pause/resume audit entry decides whether the scheduler fans out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import AuditEntry, session_scope
from specfleet.scheduler.pause import (
    PAUSE,
    RESUME,
    FleetEvent,
    Pause,
    current_pause,
    fleet_paused,
    pause_fleet,
    resume_fleet,
)

T0 = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)


def event(action: str, minutes: int, actor: str = "ana", reason: str | None = None) -> FleetEvent:
    return FleetEvent(action, actor, T0 + dt.timedelta(minutes=minutes), reason)


def test_no_events_means_running() -> None:
    """A fleet nobody ever paused runs."""
    assert current_pause([]) is None


def test_latest_event_decides_whatever_the_order_given() -> None:
    """Pause then resume runs; resume then pause is paused, by the later actor and reason."""
    assert current_pause([event(RESUME, 5), event(PAUSE, 1)]) is None
    paused = current_pause([event(PAUSE, 9, "bo", "GitLab upgrade"), event(RESUME, 5)])
    assert paused == Pause(actor="bo", since=T0 + dt.timedelta(minutes=9), reason="GitLab upgrade")


def test_same_instant_takes_the_recorded_order() -> None:
    """Two events at the same time: the one recorded last wins."""
    assert current_pause([event(PAUSE, 0), event(RESUME, 0)]) is None
    assert current_pause([event(RESUME, 0), event(PAUSE, 0)]) is not None


def test_other_audit_actions_are_ignored() -> None:
    """Unrelated audit actions never pause or resume the fleet."""
    assert current_pause([event("product.register", 3), event(PAUSE, 1)]) is not None
    assert current_pause([event("policy.publish", 3)]) is None


def test_pause_and_resume_are_recorded_in_the_audit_log(engine: Engine) -> None:
    """Pausing writes one fleet.pause entry with the reason; resuming writes fleet.resume."""
    assert fleet_paused(engine) is None
    pause, changed = pause_fleet(engine, "ops@example.com", "PostgreSQL maintenance")
    assert changed and pause.actor == "ops@example.com"
    assert fleet_paused(engine) == pause
    assert fleet_paused(engine).reason == "PostgreSQL maintenance"  # type: ignore[union-attr]

    lifted = resume_fleet(engine, "bo@example.com")
    assert lifted == pause
    assert fleet_paused(engine) is None
    with session_scope(engine) as session:
        entries = session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()  # type: ignore[arg-type]
    assert [(e.action, e.actor, e.subject_type, e.subject_id, e.detail) for e in entries] == [
        (PAUSE, "ops@example.com", "fleet", "fleet", {"reason": "PostgreSQL maintenance"}),
        (RESUME, "bo@example.com", "fleet", "fleet", {}),
    ]


def test_repeated_pause_keeps_the_first_and_resume_when_running_records_nothing(
    engine: Engine,
) -> None:
    """A second pause keeps the first one's actor and reason; a needless resume is a no-op."""
    assert resume_fleet(engine, "ana") is None
    first, _ = pause_fleet(engine, "ana", "first")
    again, changed = pause_fleet(engine, "bo", "second")
    assert not changed and again == first
    with session_scope(engine) as session:
        assert len(session.exec(select(AuditEntry)).all()) == 1


def test_pause_after_resume_pauses_again(engine: Engine) -> None:
    """Pause, resume, pause: the fleet is paused with the latest reason."""
    pause_fleet(engine, "ana", "one")
    resume_fleet(engine, "ana")
    pause_fleet(engine, "bo", "two")
    assert fleet_paused(engine) == Pause(
        actor="bo",
        since=fleet_paused(engine).since,
        reason="two",  # type: ignore[union-attr]
    )
