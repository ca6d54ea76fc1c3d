"""How the fleet is doing right now: queue depth and ages, expired leases, workers seen.

One snapshot (:func:`read_fleet_state`) serves both ``specfleet fleet status`` and the
Prometheus gauges (core/metrics.py), so the two never disagree.

* **broker depth**: messages waiting in the broker (Redis); None in embedded mode.
* **oldest queued / oldest running age**: seconds since the oldest queued evaluation was
  queued (or last sent) and since the oldest running one was claimed. A queued age far above
  a few minutes means no worker takes work; a running age above the task time limit means a
  worker is stuck or died and its lease has not expired yet.
* **leases expired**: running evaluations whose lease ran out (their worker died); the
  ledger's sweep puts them back in the queue within a minute.
* **workers seen**: workers that announced themselves in Redis within the last minute (each
  ``specfleet worker`` refreshes a key with a time to live; :func:`announce_worker`), and, as
  a second figure, the distinct lease owners of running evaluations.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from specfleet.core.db.engine import session_scope
from specfleet.core.db.tables import Evaluation
from specfleet.core.db.types import utcnow

WORKER_KEY_PREFIX = "specfleet:worker:"
ANNOUNCE_EVERY_SECONDS = 15.0
ANNOUNCE_TTL_SECONDS = 60

Probe = Callable[[], int | None]


@dataclass(frozen=True)
class FleetState:
    queued: int
    running: int
    oldest_queued_seconds: float | None
    oldest_running_seconds: float | None
    leases_expired: int
    lease_owners: int
    broker_depth: int | None
    workers_seen: int | None


def age_seconds(since: dt.datetime | None, now: dt.datetime) -> float | None:
    """Seconds from ``since`` to ``now`` (naive times are UTC, as SQLite returns them)."""
    if since is None:
        return None
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return max(0.0, (now - since).total_seconds())


def _probe(probe: Probe | None) -> int | None:
    if probe is None:
        return None
    try:
        return probe()
    except Exception:  # an unreachable broker is an unknown figure, not a failed status
        return None


def read_fleet_state(
    engine: Engine,
    broker_depth: Probe | None = None,
    workers_seen: Probe | None = None,
    now: dt.datetime | None = None,
) -> FleetState:
    """One snapshot of the fleet from the database (and the broker, when given probes)."""
    moment = now or utcnow()
    table = Evaluation.__table__  # type: ignore[attr-defined]
    c = table.c
    queued_since = func.coalesce(c.dispatched_at, c.queued_at)
    with session_scope(engine) as session:
        queued, oldest_queued = session.execute(
            select(func.count(), func.min(queued_since)).where(c.status == "queued")
        ).one()
        running, oldest_running, owners = session.execute(
            select(
                func.count(),
                func.min(func.coalesce(c.claimed_at, c.started_at)),
                func.count(func.distinct(c.lease_owner)),
            ).where(c.status == "running")
        ).one()
        expired = session.execute(
            select(func.count()).where(c.status == "running", c.lease_expires_at < moment)
        ).scalar_one()
    return FleetState(
        queued=int(queued),
        running=int(running),
        oldest_queued_seconds=age_seconds(oldest_queued, moment),
        oldest_running_seconds=age_seconds(oldest_running, moment),
        leases_expired=int(expired),
        lease_owners=int(owners),
        broker_depth=_probe(broker_depth),
        workers_seen=_probe(workers_seen),
    )


def redis_workers_seen(redis_url: str) -> Probe:
    """Workers whose announcement key is alive in Redis (see :func:`announce_worker`)."""

    def seen() -> int:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return sum(1 for _ in client.scan_iter(match=f"{WORKER_KEY_PREFIX}*", count=500))
        finally:
            client.close()

    return seen


def announce_worker(redis_url: str, name: str) -> threading.Event:
    """Refresh ``specfleet:worker:<name>`` (TTL 60 s) every 15 s on a daemon thread.

    Returns the event that stops it. A Redis outage skips announcements; the worker keeps
    working and reappears in the count when Redis is back.
    """
    import redis

    stop = threading.Event()
    key = f"{WORKER_KEY_PREFIX}{name}"

    def run() -> None:
        client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        while True:
            with contextlib.suppress(redis.RedisError):
                client.set(key, utcnow().isoformat(), ex=ANNOUNCE_TTL_SECONDS)
            if stop.wait(ANNOUNCE_EVERY_SECONDS):
                break
        with contextlib.suppress(redis.RedisError):
            client.delete(key)
        client.close()

    threading.Thread(target=run, name="specfleet-announce", daemon=True).start()
    return stop


def format_age(seconds: float | None) -> str:
    """``-`` for none, else seconds, minutes or hours as a person reads them."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
