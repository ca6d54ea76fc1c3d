"""Celery tasks for notifications: the weekly digest (beat, Mondays) and needs-human notices.

Both are thin: ``specfleet.core.notify.send`` decides and de-duplicates (a sent-notification row per
owner, week or evaluation, and channel), so a second scheduler or a retry sends nothing twice.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from specfleet.core.notify.send import notify_needs_human, send_digests
from specfleet.scheduler.beat import DIGEST_TASK
from specfleet.worker.tasks import SpecfleetTask, resources

NEEDS_HUMAN_TASK = "specfleet.notify_needs_human"


@shared_task(bind=True, base=SpecfleetTask, name=DIGEST_TASK)  # type: ignore[untyped-decorator]
def send_weekly_digest(self: SpecfleetTask) -> dict[str, Any]:
    """Send this week's digest to every owner with something waiting (once per week)."""
    res = resources()
    run = send_digests(res.settings, res.engine)
    return {
        "week": run.week,
        "owners": len(run.digests),
        "sent": sum(1 for d in run.deliveries if d.status == "sent"),
        "failed": sum(1 for d in run.deliveries if d.status == "failed"),
    }


@shared_task(bind=True, base=SpecfleetTask, name=NEEDS_HUMAN_TASK)  # type: ignore[untyped-decorator]
def notify_needs_human_task(self: SpecfleetTask, evaluation_id: int) -> dict[str, Any]:
    """Tell the owners of the evaluation's product that it needs a person (once each)."""
    res = resources()
    deliveries = notify_needs_human(res.settings, res.engine, evaluation_id)
    return {"sent": sum(1 for d in deliveries if d.status == "sent")}
