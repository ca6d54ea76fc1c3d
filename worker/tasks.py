"""Celery tasks. They stay thin: each one calls the pipeline or a scheduler function.

What every task shares lives in :class:`SpecfleetTask` and in signal handlers (DESIGN 9.6):
per-process settings, database engine and pipeline collaborators (rebuilt after a fork), the
structlog context (task, evaluation), and the last word on an evaluation a task could not
finish (timed out, retries exhausted, redelivered too often), so no row stays ``running``.

Retries are for transient failures only (a forge 5xx/429/timeout, the database or broker
unreachable), with exponential backoff and jitter, honouring a forge's ``Retry-After``.
Everything else is an outcome the pipeline records on the row.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

import structlog
from celery import Celery, Task, shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError as SQLOperationalError

from core.db import Evaluation, ensure_schema, make_engine, session_scope
from core.db.types import utcnow
from core.errors import DatabaseError, ForgeTransientError
from core.log import configure_logging, configure_service_logging, get_logger
from core.metrics import mark_process_dead
from core.settings import Settings, get_settings
from scheduler import fanout, tracking
from scheduler.beat import window_lock
from scheduler.due import Schedule
from scheduler.pause import Pause, fleet_paused
from worker import app as _configured_app  # noqa: F401  (see below)

# Importing worker.app above creates the app configured from settings and makes it Celery's
# current app, so ``evaluate.delay(...)`` from any entry point reaches the configured broker
# rather than Celery's default (amqp://localhost).
EVALUATE = "specfleet.evaluate"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ForgeTransientError,
    DatabaseError,
    BrokerOperationalError,
    SQLOperationalError,
)
# An evaluation started this many times more than its retries allow, and never finished (its
# worker died each time: OOM, SIGKILL), is not tried again; it ends as failed instead.
MAX_DELIVERIES = 3
RETRY_BASE_SECONDS = 5.0
PUBLISH_BATCH = 500  # messages per pipelined round trip to Redis
RETRY_MAX_SECONDS = 300.0

log = get_logger("specfleet.worker")


class ProcessResources:
    """Settings, engine and pipeline collaborators of this process (rebuilt after fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.settings: Settings = get_settings()
        self._engine: Engine | None = None
        self._deps: Any = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            engine = make_engine(self.settings.resolved_database_url)
            ensure_schema(engine)
            self._engine = engine
        return self._engine

    @property
    def deps(self) -> Any:
        if self._deps is None:
            from worker.pipeline.wiring import pipeline_deps

            self._deps = pipeline_deps(self.settings)
        return self._deps

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        close = getattr(self._deps, "close", None)
        if callable(close):
            close()
        self._engine = None
        self._deps = None


_resources: ProcessResources | None = None


def resources() -> ProcessResources:
    global _resources
    if (
        _resources is None
        # a forked pool process must not share its parent's database connections
        or _resources.pid != os.getpid()
        # settings read again (tests, an in-process worker after a reconfiguration)
        or _resources.settings is not get_settings()
    ):
        if _resources is not None and _resources.pid == os.getpid():
            _resources.close()
        _resources = ProcessResources()
    return _resources


SERVICE_ENV = "SPECFLEET_SERVICE"  # set by `specfleet worker`; inherited by pool processes


def _configure_logging() -> None:
    """Service processes log JSON (correlated, redacted); an in-process worker of a CLI
    command keeps the command's console format."""
    service = os.environ.get(SERVICE_ENV)
    if service:
        configure_service_logging(get_settings(), service=service)
    else:
        configure_logging(get_settings())


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _keep_celery_off_the_root_logger(**_: Any) -> None:
    # any receiver stops Celery installing its own handlers and format over specfleet's
    _configure_logging()


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]
def _fresh_process(**_: Any) -> None:
    global _resources
    _resources = None
    _configure_logging()


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _worker_logging(**_: Any) -> None:
    _configure_logging()


@signals.worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _close_process(**_: Any) -> None:
    if _resources is not None:
        _resources.close()
    mark_process_dead(os.getpid())


class SpecfleetTask(Task):  # type: ignore[misc]
    """Base task: log context per task, and the final word on an unfinished evaluation."""

    abstract = True

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(task=self.name, task_id=task_id)

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        structlog.contextvars.clear_contextvars()

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if self.name == EVALUATE and args:
            # retries exhausted or an unexpected error: the row must not stay running/queued
            finish_failed(resources().engine, int(args[0]), f"{type(exc).__name__}: {exc}")


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; never sooner than the forge's Retry-After."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * (2**retries))
    # "equal jitter": half fixed, half random, so retries of a batch spread out
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (not security)
    return float(max(delay, retry_after or 0.0))


def finish_failed(engine: Engine, evaluation_id: int, reason: str) -> bool:
    """End an evaluation the pipeline could not end itself; False if it was already done."""
    with session_scope(engine) as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None or row.status == "done":
            return False
        row.status = "done"
        row.outcome = "failed"
        row.error = reason[:4000]
        row.finished_at = utcnow()
        session.add(row)
    log.warning("evaluation failed", evaluation_id=evaluation_id, reason=reason[:200])
    return True


# The Evaluation row is the result; storing it again in the backend would only cost a
# round trip per message (and, on Redis, a result subscription per published task).
@shared_task(bind=True, base=SpecfleetTask, name=EVALUATE, max_retries=None, ignore_result=True)  # type: ignore[untyped-decorator]
def evaluate(self: SpecfleetTask, evaluation_id: int) -> dict[str, Any]:
    """Run one evaluation through the pipeline (idempotent: a redelivered message is safe)."""
    res = resources()
    with session_scope(res.engine) as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            log.warning("no such evaluation", evaluation_id=evaluation_id)
            return {"evaluation_id": evaluation_id, "outcome": None, "skipped": "missing"}
        product_id, status, outcome, attempts = (
            row.product_id,
            row.status,
            row.outcome,
            row.attempts,
        )
    structlog.contextvars.bind_contextvars(evaluation_id=evaluation_id, product=product_id)
    if status == "done":
        return {"evaluation_id": evaluation_id, "outcome": outcome, "skipped": "done"}
    if status == "running" and attempts >= MAX_DELIVERIES + res.settings.task_max_retries:
        finish_failed(
            res.engine,
            evaluation_id,
            f"abandoned: started {attempts} times and its worker died each time",
        )
        return {"evaluation_id": evaluation_id, "outcome": "failed"}
    from worker.pipeline import run_evaluation

    try:
        result = run_evaluation(evaluation_id, res.deps)
    except TRANSIENT_ERRORS as error:
        max_retries = res.settings.task_max_retries
        if self.request.retries >= max_retries:
            raise
        countdown = retry_delay(self.request.retries, getattr(error, "retry_after", None))
        log.info("transient failure, retrying", error=str(error)[:200], countdown=countdown)
        raise self.retry(exc=error, countdown=countdown, max_retries=max_retries) from error
    except SoftTimeLimitExceeded:
        finish_failed(
            res.engine,
            evaluation_id,
            f"timed out after {res.settings.task_soft_time_limit} s "
            "(SPECFLEET_TASK_SOFT_TIME_LIMIT)",
        )
        return {"evaluation_id": evaluation_id, "outcome": "failed"}
    return {"evaluation_id": evaluation_id, "outcome": getattr(result, "outcome", None)}


def publish_dispatch(settings: Settings) -> Callable[[Sequence[int]], None] | None:
    """How a policy publish sends its evaluations: to the workers in fleet mode; in embedded
    mode they wait in the table for ``run-window`` (whose worker runs inside the command)."""
    from worker.app import is_embedded, make_app

    if is_embedded(settings):
        return None
    app = make_app(settings)
    return lambda ids: send_evaluations(app, ids)


def send_evaluations(app: Celery, ids: Sequence[int]) -> None:
    """Publish one ``evaluate`` message per id over one producer (one broker connection).

    On Redis the messages of a call go out in pipelined round trips (kombu's publish batch);
    transports without batching publish each message at once.
    """
    if not ids:
        return
    task = app.tasks[EVALUATE]
    with app.producer_or_acquire() as producer:
        batch = getattr(producer, "batch", None)  # kombu >= 5.7
        with batch(max_size=PUBLISH_BATCH) if batch is not None else nullcontext():
            for index, evaluation_id in enumerate(ids):
                number = int(evaluation_id)
                # The first message declares the queue; declaring it again for each of
                # 10,000 messages was a fifth of the fan-out. argsrepr is what Celery would
                # compute with saferepr, written directly (documented apply_async options).
                extra: dict[str, Any] = {"declare": []} if index else {}
                task.apply_async(
                    (number,), producer=producer, argsrepr=f"({number},)", kwargsrepr="{}", **extra
                )


def paused_answer(pause: Pause, **facts: Any) -> dict[str, Any]:
    log.warning("fleet paused: nothing enqueued", paused_by=pause.actor, reason=pause.reason)
    return {**facts, "queued": 0, "skipped": f"fleet paused by {pause.actor}"}


def schedule_from(settings: Settings) -> Schedule:
    return Schedule.from_config(
        settings.window_cron, settings.timezone, settings.schedule_overrides
    )


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.fan_out_window")  # type: ignore[untyped-decorator]
def fan_out_window(self: SpecfleetTask, window: str | None = None) -> dict[str, Any]:
    """Queue the window's due evaluations (the current window when none is named)."""
    res = resources()
    schedule = schedule_from(res.settings)
    now = utcnow()
    # a named window is a manual run: everything whose schedule fires that week is due
    target, as_of = (window, None) if window else (schedule.window_at(now), now)
    pause = fleet_paused(res.engine)
    if pause is not None:
        return paused_answer(pause, window=target)
    with window_lock(res.settings, target) as acquired:
        if not acquired:
            log.warning("another scheduler holds the window lock", window=target)
            return {"window": target, "queued": 0, "skipped": "locked"}
        result = fanout.fan_out_window(
            res.engine,
            schedule,
            target,
            as_of,
            dispatch=partial(send_evaluations, self.app),
            batch_size=res.settings.fanout_batch_size,
        )
    log.info("window fanned out", window=target, queued=len(result.queued))
    return {"window": target, "queued": len(result.queued), "skipped": result.skipped}


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.fan_out_policy")  # type: ignore[untyped-decorator]
def fan_out_policy(self: SpecfleetTask, version: int) -> dict[str, Any]:
    """Send the evaluations a policy publish queued (``queue_policy_evaluations``)."""
    res = resources()
    pause = fleet_paused(res.engine)
    if pause is not None:
        return paused_answer(pause, policy_set_version=version)
    ids = fanout.queued_evaluation_ids(res.engine, trigger="policy", policy_set_version=version)
    fanout.dispatch_in_batches(ids, partial(send_evaluations, self.app))
    return {"policy_set_version": version, "dispatched": len(ids)}


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.redispatch_stale")  # type: ignore[untyped-decorator]
def redispatch_stale(self: SpecfleetTask) -> dict[str, Any]:
    """Send again evaluations queued long ago that no worker took (a lost or unsent message)."""
    res = resources()
    pause = fleet_paused(res.engine)
    if pause is not None:
        return paused_answer(pause)
    stale_after = 2 * res.settings.task_time_limit
    cutoff = utcnow() - dt.timedelta(seconds=stale_after)
    ids = fanout.queued_evaluation_ids(res.engine, queued_before=cutoff)
    fanout.dispatch_in_batches(ids, partial(send_evaluations, self.app))
    return {"dispatched": len(ids)}


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.track_merge_requests")  # type: ignore[untyped-decorator]
def track_merge_requests(self: SpecfleetTask) -> dict[str, Any]:
    """Poll open merge requests and record merged and closed ones."""
    res = resources()
    report = tracking.track_merge_requests(res.engine, forge_lookup(res))
    return {
        "checked": report.checked,
        "merged": len(report.merged),
        "closed": len(report.closed),
        "vanished": len(report.vanished),
        "unreachable": len(report.unreachable),
    }


def forge_lookup(res: ProcessResources) -> tracking.ForgeFor:
    """Forge adapters per product, from the pipeline's wiring (the one place that builds them)."""
    forge_for: tracking.ForgeFor = res.deps.forge_for
    return forge_for
