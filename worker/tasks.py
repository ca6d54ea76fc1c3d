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

import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

import structlog
from celery import Celery, Task, shared_task, signals
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from specfleet.core.db import ensure_schema, ledger, make_engine
from specfleet.core.db.types import utcnow
from specfleet.core.errors import DatabaseError, ForgeTransientError
from specfleet.core.log import configure_logging, configure_service_logging, get_logger
from specfleet.core.metrics import mark_process_dead
from specfleet.core.settings import Settings, get_settings
from specfleet.scheduler import fanout, tracking
from specfleet.scheduler.beat import window_lock
from specfleet.scheduler.due import Schedule
from specfleet.scheduler.pause import Pause, fleet_paused
from specfleet.worker import app as _configured_app  # noqa: F401  (see below)
from specfleet.worker.leases import LeaseKeeper, claim_or_skip, lease_owner

# Importing worker.app above creates the app configured from settings and makes it Celery's
# current app, so ``evaluate.delay(...)`` from any entry point reaches the configured broker
# rather than Celery's default (amqp://localhost).
EVALUATE = "specfleet.evaluate"
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ForgeTransientError, BrokerOperationalError)
# The database unreachable: the task body is retried in place (SPECFLEET_DATABASE_OUTAGE).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, SQLAlchemyError)
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
            from specfleet.worker.wiring import pipeline_deps

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
            finish_failed(
                resources().engine,
                int(args[0]),
                f"{type(exc).__name__}: {exc}",
                lease_owner(task_id),
            )


def retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter; never sooner than the forge's Retry-After."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * (2**retries))
    # "equal jitter": half fixed, half random, so retries of a batch spread out
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (not security)
    return float(max(delay, retry_after or 0.0))


def finish_failed(
    engine: Engine, evaluation_id: int, reason: str, owner: str | None = None
) -> bool:
    """End an evaluation the pipeline could not end itself; False if it was already done (or,
    with ``owner``, is no longer that worker's)."""
    failed = ledger.fail(engine, evaluation_id, reason, owner=owner)
    if failed:
        log.warning("evaluation failed", evaluation_id=evaluation_id, reason=reason[:200])
    return failed


# The Evaluation row is the result; storing it again in the backend would only cost a
# round trip per message (and, on Redis, a result subscription per published task).
@shared_task(bind=True, base=SpecfleetTask, name=EVALUATE, max_retries=None, ignore_result=True)  # type: ignore[untyped-decorator]
def evaluate(self: SpecfleetTask, evaluation_id: int) -> dict[str, Any]:
    """Run one evaluation through the pipeline (idempotent: a redelivered message is safe).

    The whole body, from the first read, is retried while the database is unreachable, for
    up to ``SPECFLEET_DATABASE_OUTAGE`` seconds; after that the message is rejected back to
    the broker (requeued), never acknowledged unrun.
    """
    res = resources()
    owner = lease_owner(self.request.id)
    structlog.contextvars.bind_contextvars(evaluation_id=evaluation_id)
    deadline = time.monotonic() + res.settings.database_outage
    failures = 0
    while True:
        try:
            return _evaluate_claimed(self, res, evaluation_id, owner)
        except DATABASE_ERRORS as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error(
                    "database unreachable: message returned to the broker",
                    outage_seconds=res.settings.database_outage,
                    error=str(error)[:200],
                )
                raise Reject(f"database unreachable: {error}"[:500], requeue=True) from error
            countdown = min(remaining, retry_delay(failures) / 5)
            failures += 1
            log.warning(
                "database unreachable, retrying",
                countdown=round(countdown, 1),
                gives_up_in=round(remaining),
                error=str(error)[:200],
            )
            time.sleep(countdown)


def _evaluate_claimed(
    task: SpecfleetTask, res: ProcessResources, evaluation_id: int, owner: str
) -> dict[str, Any]:
    skipped = claim_or_skip(res.engine, res.settings, evaluation_id, owner)
    if skipped is not None:
        return skipped
    from specfleet.worker.pipeline import run_evaluation

    try:
        with LeaseKeeper(res.engine, evaluation_id, owner, res.settings.lease_seconds):
            result = run_evaluation(evaluation_id, res.deps, owner=owner)
    except DATABASE_ERRORS:
        raise  # the outage loop above retries the whole body, claim included
    except TRANSIENT_ERRORS as error:
        max_retries = res.settings.task_max_retries
        if task.request.retries >= max_retries:
            raise
        # let go, so the retried message (possibly in another worker) can claim it at once
        ledger.release(res.engine, evaluation_id, owner)
        countdown = retry_delay(task.request.retries, getattr(error, "retry_after", None))
        log.info("transient failure, retrying", error=str(error)[:200], countdown=countdown)
        raise task.retry(exc=error, countdown=countdown, max_retries=max_retries) from error
    except SoftTimeLimitExceeded:
        finish_failed(
            res.engine,
            evaluation_id,
            f"timed out after {res.settings.task_soft_time_limit} s "
            "(SPECFLEET_TASK_SOFT_TIME_LIMIT)",
            owner,
        )
        return {"evaluation_id": evaluation_id, "outcome": "failed"}
    if result.outcome == "needs-human":
        _tell_owners(res, evaluation_id)
    return {"evaluation_id": evaluation_id, "outcome": result.outcome}


def _tell_owners(res: ProcessResources, evaluation_id: int) -> None:
    """A needs-human outcome is announced to the product's owners at once, as its own task:
    a mail server that is down must not undo or delay the recorded evaluation."""
    settings = res.settings
    if not (settings.smtp_host or settings.notify_webhook_url or settings.notify_owner_webhooks):
        return  # no channel configured: the weekly digest and the console still show it
    from specfleet.worker.notify_tasks import notify_needs_human_task

    try:
        notify_needs_human_task.delay(evaluation_id)
    except Exception as error:  # the broker refused: the digest will still carry it
        log.warning("needs-human notice not queued", error=str(error)[:200])


def publish_dispatch(settings: Settings) -> Callable[[Sequence[int]], None] | None:
    """How a policy publish sends its evaluations: to the workers in fleet mode; in embedded
    mode they wait in the table for ``run-window`` (whose worker runs inside the command)."""
    from specfleet.worker.app import is_embedded, make_app

    if is_embedded(settings):
        return None
    app = make_app(settings)
    return lambda ids: send_evaluations(app, ids)


def paused_check(engine: Engine) -> Callable[[], bool]:
    """The fan-outs' question before each batch: is the fleet paused now?"""
    return lambda: fleet_paused(engine) is not None


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
            pause_check=lambda: fleet_paused(res.engine) is not None,
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
    sent = fanout.dispatch_in_batches(
        ids,
        partial(send_evaluations, self.app),
        res.settings.fanout_batch_size,
        pause_check=lambda: fleet_paused(res.engine) is not None,
    )
    if sent < len(ids):
        log.warning("fleet paused mid-fan-out: the rest is held", sent=sent, held=len(ids) - sent)
    return {"policy_set_version": version, "dispatched": sent, "held": len(ids) - sent}


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.redispatch_stale")  # type: ignore[untyped-decorator]
def redispatch_stale(self: SpecfleetTask) -> dict[str, Any]:
    """The sweep: re-queue evaluations whose lease expired (their worker died) and send again
    those queued long ago that no worker claimed (a message lost in a broker restart).

    While the fleet is paused it only re-queues expired leases; what is queued is sent once
    the fleet resumes (held batches of a paused fan-out included).
    """
    res = resources()
    if fleet_paused(res.engine) is not None:
        # paused: expired leases go back to the queue, but nothing is sent until resume
        expired = ledger.requeue_expired(res.engine)
        return {"dispatched": 0, "expired": expired, "stale": [], "skipped": "paused"}
    result = ledger.sweep(res.engine, res.settings.stale_after)
    ids = result.to_send
    fanout.dispatch_in_batches(ids, partial(send_evaluations, self.app))
    if ids:
        log.warning(
            "sweep re-sent evaluations",
            expired_leases=len(result.expired),
            stale_queued=len(result.stale),
        )
    return {"dispatched": len(ids), "expired": result.expired, "stale": result.stale}


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
