"""The Celery application: broker and result backend from settings, reliability defaults.

Two configurations, no code path differs between them (DESIGN section 8):

* **embedded** (no ``SPECFLEET_REDIS_URL`` / ``SPECFLEET_BROKER_URL``): kombu's SQLAlchemy
  transport on a SQLite file (``$SPECFLEET_HOME/broker.sqlite``) and the database result
  backend on another (``results.sqlite``). No server; a queued message is a row in a file, so
  nothing queued is lost when every process stops and starts again.
* **fleet**: Redis as broker and result backend. Messages are acknowledged late, so a worker
  killed mid-evaluation leaves its message unacknowledged and Redis hands it to another worker
  once the visibility timeout (sized just above the hard time limit) has passed.

``celery -A worker.app worker`` uses the module-level ``app``; ``specfleet worker`` builds one
with :func:`make_app`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from specfleet.core.settings import Settings, get_settings
from specfleet.scheduler.beat import beat_entries

QUEUE = "specfleet"
# Above the hard limit: a task killed by it is acknowledged first (as failed), so Redis never
# redelivers a message whose task is still legitimately running.
VISIBILITY_MARGIN_SECONDS = 30


def broker_urls(settings: Settings) -> tuple[str, str]:
    """(broker, result backend) for these settings; explicit URLs win over redis_url."""
    home = settings.home
    broker = settings.broker_url or settings.redis_url or f"sqla+sqlite:///{home / 'broker.sqlite'}"
    backend = (
        settings.result_backend or settings.redis_url or f"db+sqlite:///{home / 'results.sqlite'}"
    )
    return broker, backend


def is_embedded(settings: Settings) -> bool:
    """True when the broker is the server-less SQLite queue."""
    return broker_urls(settings)[0].startswith("sqla+")


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` with the evaluation and scheduler tasks."""
    settings = settings or get_settings()
    broker, backend = broker_urls(settings)
    if broker.startswith("sqla+sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    app = Celery(
        "specfleet",
        broker=broker,
        backend=backend,
        include=[
            "specfleet.worker.tasks",
            "specfleet.worker.notify_tasks",
            "specfleet.worker.console_tasks",
        ],
    )
    transport_options: dict[str, Any] = {}
    if broker.startswith(("redis://", "rediss://", "unix://")):
        transport_options = {
            "visibility_timeout": settings.task_time_limit + VISIBILITY_MARGIN_SECONDS,
            # look for abandoned messages every few seconds instead of every 100
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        }
    elif broker.startswith("sqla+"):
        # these options go to SQLAlchemy's create_engine: wait on a busy SQLite file (several
        # processes publish and consume) instead of failing at once
        transport_options = {"connect_args": {"timeout": 30}}
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=timedelta(days=7),
        broker_transport_options=transport_options,
        # a result that cannot be stored while Redis restarts must not fail a finished task
        result_backend_always_retry=True,
        result_backend_max_retries=20,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        # structlog writes its own lines; Celery must not re-log them as WARNING
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        timezone=settings.timezone,
        enable_utc=True,
        beat_schedule=beat_schedule(settings),
    )
    return app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's form of :func:`specfleet.scheduler.beat.beat_entries`."""
    schedule: dict[str, dict[str, Any]] = {}
    for entry in beat_entries(settings):
        when: Any
        if entry.cron is not None:
            fields = entry.cron.expression.split()
            when = crontab(
                minute=fields[0],
                hour=fields[1],
                day_of_month=fields[2],
                month_of_year=fields[3],
                day_of_week=fields[4],
            )
        else:
            when = timedelta(seconds=entry.every_seconds or 3600)
        schedule[entry.name] = {"task": entry.task, "schedule": when, "args": entry.args}
    return schedule


app = make_app()
