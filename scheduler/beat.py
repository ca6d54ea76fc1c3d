"""The periodic work a ``specfleet scheduler`` (Celery beat) triggers, and the window lock.

Entries are plain values here; ``worker/app.py`` turns them into Celery's beat schedule (Celery
stays confined to the worker package). The weekly entry fires at the organisation's cron tick;
an hourly catch-up entry runs the same idempotent fan-out so products with their own schedule,
and ticks missed while no scheduler ran, are queued too.

Two schedulers are safe: each fan-out holds a lock per window (Redis ``SET NX`` with a timeout
in fleet mode, an exclusive file lock in embedded mode), so the second one waits and then finds
every due product already queued.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from specfleet.core.settings import Settings
from specfleet.scheduler.due import Cron

FAN_OUT_TASK = "specfleet.fan_out_window"
TRACK_TASK = "specfleet.track_merge_requests"
REDISPATCH_TASK = "specfleet.redispatch_stale"
DIGEST_TASK = "specfleet.send_weekly_digest"  # worker/notify_tasks.py
RELEASE_DEFERRED_TASK = "specfleet.release_deferred"
AUTOMERGE_TASK = "specfleet.automerge"


@dataclass(frozen=True)
class BeatEntry:
    """One periodic task: at a cron tick (``cron``) or every ``every_seconds``."""

    name: str
    task: str
    cron: Cron | None = None
    every_seconds: float | None = None
    args: tuple[Any, ...] = field(default=())


def beat_entries(settings: Settings) -> list[BeatEntry]:
    """The scheduler's entries for these settings (cron in ``settings.timezone``)."""
    cron = Cron.parse(settings.window_cron)
    return [
        BeatEntry("weekly-window", FAN_OUT_TASK, cron=cron),
        BeatEntry("window-catch-up", FAN_OUT_TASK, every_seconds=3600),
        BeatEntry("track-merge-requests", TRACK_TASK, every_seconds=900),
        # the ledger's sweep: expired leases and unclaimed messages recovered within minutes
        BeatEntry("sweep", REDISPATCH_TASK, every_seconds=settings.sweep_seconds),
        BeatEntry("weekly-digest", DIGEST_TASK, cron=Cron.parse(settings.digest_cron)),
        # rate limits free capacity by the minute; automerge waits hours (the grace period)
        BeatEntry("release-deferred", RELEASE_DEFERRED_TASK, every_seconds=300),
        BeatEntry("automerge", AUTOMERGE_TASK, every_seconds=900),
    ]


@contextmanager
def window_lock(
    settings: Settings, window: str, hold_seconds: int = 600, wait_seconds: float = 60
) -> Iterator[bool]:
    """Hold the fan-out lock of ``window``; yields False when another holder kept it too long.

    The Redis lock expires after ``hold_seconds`` so a scheduler killed while holding it does
    not block the next week; the file lock is released by the kernel when its holder dies.
    """
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        lock = client.lock(
            f"specfleet:lock:fan-out:{window}",
            timeout=hold_seconds,
            blocking_timeout=wait_seconds,
        )
        acquired = bool(lock.acquire(blocking=True))
        try:
            yield acquired
        finally:
            if acquired:
                # expired meanwhile: nothing left to release
                with suppress(redis.exceptions.LockError):
                    lock.release()
            client.close()
        return
    lock_dir = settings.home / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"fan-out-{window}.lock").open("a+") as handle:
        deadline = time.monotonic() + wait_seconds
        acquired = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        try:
            yield acquired
        finally:
            if acquired:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
