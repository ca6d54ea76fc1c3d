"""The beat's weekly digest task and the needs-human notice task, through the Celery app."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery.schedules import crontab

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.settings import Settings, get_settings
from specfleet.worker import notify_tasks
from specfleet.worker.app import make_app
from tests.core.test_notify import ANA, add_merge_request, add_needs_human, add_product
from tests.support.receivers import smtp_server


def test_the_digest_goes_out_on_monday_mornings_by_default() -> None:
    """The beat schedule holds a weekly digest entry at the digest cron (Monday 08:00)."""
    app = make_app(Settings())
    entry = app.conf.beat_schedule["weekly-digest"]
    assert entry["task"] == "specfleet.send_weekly_digest"
    assert entry["schedule"] == crontab(minute="0", hour="8", day_of_week="1")
    app.close()


def test_digest_and_needs_human_tasks_send_once(
    monkeypatch: pytest.MonkeyPatch, specfleet_home: Path
) -> None:
    """The digest task mails the owner once per week; the notice task once per evaluation."""
    with smtp_server() as mailbox:
        monkeypatch.setenv("SPECFLEET_SMTP_HOST", mailbox.host)
        monkeypatch.setenv("SPECFLEET_SMTP_PORT", str(mailbox.port))
        get_settings.cache_clear()
        settings = get_settings()
        engine = make_engine(settings.resolved_database_url)
        ensure_schema(engine)
        add_product(engine, "orders", [ANA])
        add_merge_request(engine, "orders", "Upgrade pandas to 2.2.3", None)
        evaluation = add_needs_human(engine, "orders", "tests fail")
        app = make_app(settings)
        assert "specfleet.worker.notify_tasks" in app.conf.include  # what a worker imports at start
        digest = app.tasks[notify_tasks.DIGEST_TASK]
        assert digest.apply().get()["sent"] == 1
        assert digest.apply().get()["sent"] == 0
        notice = app.tasks[notify_tasks.NEEDS_HUMAN_TASK]
        assert notice.apply(args=(evaluation,)).get() == {"sent": 1}
        assert notice.apply(args=(evaluation,)).get() == {"sent": 0}
        subjects = sorted(str(message["Subject"]) for _, message in mailbox.received)
        assert len(subjects) == 2 and subjects[1] == "specfleet: Orders needs you"
        app.close()
        engine.dispose()
