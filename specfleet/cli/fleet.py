"""``specfleet worker``, ``specfleet scheduler`` and ``specfleet run-window``: running the fleet.

``worker`` and ``scheduler`` start Celery's worker and beat with the app from settings.
``run-window`` queues a window's due evaluations and waits for them with a progress bar, then
shows each product's outcome. In embedded mode (no Redis) it runs a worker inside the command
by default, so one command does the whole window without any server.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import typer
from celery import Celery
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    reported_errors,
    wiring,
)
from specfleet.core.db import Evaluation, MergeRequest, Proposal, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.settings import Settings
from specfleet.core.windows import WINDOW_PATTERN
from specfleet.scheduler import fanout
from specfleet.scheduler.beat import window_lock
from specfleet.scheduler.pause import fleet_paused

OUTCOME_STYLE = {
    "no-op": "dim",
    "unchanged": "dim",
    "no-change": "dim",
    "proposed": "green",
    "suppressed": "yellow",
    "needs-human": "yellow",
    "failed": "red",
}
POLL_SECONDS = 0.5
IDLE_HINT_SECONDS = 60
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C

Pool = Literal["prefork", "solo", "threads"]


def refuse_without_sandbox() -> None:
    """A fleet worker does not start where it could only run product code unsandboxed."""
    from specfleet.worker.verify.sandbox_policy import SANDBOX_OFF_WARNING, current_decision

    decision = current_decision()
    if decision.kind is None:
        fail(decision.refusal or "no sandbox", EXIT_USAGE)
    if decision.warning:
        console.print(f"[bold red]WARNING[/] {SANDBOX_OFF_WARNING}")


def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1, help="Processes or threads.")
    ] = None,
    pool: Annotated[str, typer.Option(help="prefork, solo or threads.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a worker: take evaluations from the queue and run them (Ctrl-C stops it)."""
    if pool not in ("prefork", "solo", "threads"):
        fail(f"--pool must be prefork, solo or threads, not {pool!r}", EXIT_USAGE)
    import os

    from specfleet.core.log import configure_service_logging, stdout_into_log
    from specfleet.core.metrics import start_worker_metrics_server
    from specfleet.worker import reaper
    from specfleet.worker.tasks import SERVICE_ENV

    with reported_errors():
        settings = wiring().settings
        os.environ[SERVICE_ENV] = "worker"
        configure_service_logging(settings, service="worker")
        stdout_into_log(settings, "worker")
        # build groups and scratch directories of dead workers go; pool processes register
        reaper.reap(settings.home / "work" / reaper.OWNERS)
        reaper.connect_celery_signals()
        node = worker_node_name(settings.worker_name, os.getpid())
        _announce(settings, node)
        refuse_without_sandbox()
        if settings.metrics_port:
            start_worker_metrics_server(settings.metrics_port, settings.metrics_host)
        app = _app(settings)
    argv = [
        "worker",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        f"--hostname={node}",
    ]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv)


def worker_node_name(configured: str | None, pid: int) -> str:
    """The worker's Celery node name: the configured one, else one unique per process.

    Celery's default, ``celery@HOST``, is the same for two workers on one host (or two pods
    with one hostname), and its remote control then confuses them; the pid tells them apart.
    Celery expands ``%h`` (hostname), ``%n`` and ``%d`` itself.
    """
    return configured or f"specfleet-{pid}@%h"


def _announce(settings: Settings, node: str) -> None:
    """Count this worker in `fleet status` and the workers_seen gauge (Redis brokers only)."""
    from celery.utils.nodenames import host_format

    from specfleet.core.fleetstate import announce_worker
    from specfleet.worker.app import broker_urls

    broker = broker_urls(settings)[0]
    if broker.startswith(("redis://", "rediss://")):
        announce_worker(broker, host_format(node))


def scheduler(
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run the scheduler (Celery beat): the weekly window, MR tracking, lost-message sweeps."""
    import os

    from specfleet.core.log import configure_service_logging, stdout_into_log
    from specfleet.core.metrics import start_worker_metrics_server
    from specfleet.worker.tasks import SERVICE_ENV

    with reported_errors():
        settings = wiring().settings
        os.environ[SERVICE_ENV] = "scheduler"
        configure_service_logging(settings, service="scheduler")
        stdout_into_log(settings, "scheduler")
        if settings.metrics_port:
            start_worker_metrics_server(settings.metrics_port, settings.metrics_host)
        app = _app(settings)
        settings.home.mkdir(parents=True, exist_ok=True)
    app.start(
        [
            "beat",
            f"--loglevel={loglevel}",
            f"--schedule={settings.home / 'beat-schedule'}",
            f"--pidfile={settings.home / 'beat.pid'}",
        ]
    )


def run_window(
    window: Annotated[
        str | None, typer.Option(help="ISO week to run, e.g. 2026-W48 (default: this week).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for every evaluation to finish.")
    ] = True,
    in_process: Annotated[
        bool | None,
        typer.Option(
            "--in-process/--no-in-process",
            help="Run a worker inside this command (default: yes in embedded mode).",
        ),
    ] = None,
) -> None:
    """Queue a window's due evaluations, wait for them with a progress bar, show the results."""
    if window is not None and not WINDOW_PATTERN.match(window):
        fail(f"--window {window!r} is not an ISO week such as 2026-W48", EXIT_USAGE)
    with services_reachable():
        _run_window(window, wait, in_process)


@contextmanager
def services_reachable() -> Iterator[None]:
    """The database or the broker down: one line naming which and why, exit 2 (no traceback)."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as error:
        fail(f"cannot reach the database: {_first_line(error.orig or error)}", EXIT_USAGE)
    except (BrokerError, RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
        fail(f"cannot reach the broker (Redis): {_first_line(error)}", EXIT_USAGE)


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _run_window(window: str | None, wait: bool, in_process: bool | None) -> None:
    with reported_errors():
        wired = wiring()
        settings = wired.settings
        engine = wired.engine
        from specfleet.worker.app import is_embedded
        from specfleet.worker.tasks import schedule_from, send_evaluations

        pause = fleet_paused(engine)
        if pause is not None:
            why = f" ({pause.reason})" if pause.reason else ""
            fail(
                f"the fleet is paused by {pause.actor} since {pause.since:%Y-%m-%d %H:%M} UTC"
                f"{why}: nothing queued; `specfleet fleet resume` lifts the pause",
                EXIT_INVALID,
            )
        app = _app(settings)
        schedule = schedule_from(settings)
        target = window or schedule.window_at(utcnow())
        started = utcnow()
        # evaluations already waiting in the window (a policy publish, a lost message) are
        # sent again: an evaluation that runs twice does the work once
        waiting = fanout.queued_evaluation_ids(engine, window=target, queued_before=started)

        def dispatch(ids: Sequence[int]) -> None:
            send_evaluations(app, ids)

        with window_lock(settings, target) as acquired:
            if not acquired:
                fail(f"another scheduler is fanning out {target}; try again shortly", EXIT_USAGE)
            result = fanout.fan_out_window(
                engine, schedule, target, None, dispatch, settings.fanout_batch_size
            )
        fanout.dispatch_in_batches(waiting, dispatch, settings.fanout_batch_size)
    # evaluations a worker is already running (a policy publish sent them) are waited for too
    running = fanout.running_evaluation_ids(engine, target)
    tracked = sorted({*result.queued, *waiting, *running})
    console.print(
        f"[bold]{target}[/]: {_count(len(result.queued), 'evaluation')} queued"
        + (f", {len(waiting)} already waiting sent again" if waiting else "")
        + f", {_count(result.skipped, 'product')} not due."
    )
    if not wait:
        raise typer.Exit(EXIT_OK)
    if not tracked:
        _results_table(engine, target, None)
        raise typer.Exit(EXIT_OK)
    run_here = is_embedded(settings) if in_process is None else in_process
    try:
        with _in_process_worker(app, run_here):
            _wait_with_progress(engine, target, tracked, hint=not run_here)
    except KeyboardInterrupt:
        # the evaluations stay queued (and, in fleet mode, with the workers): nothing is lost
        err_console.print(
            f"stopped waiting; the window's evaluations stay queued. Watch them with "
            f"`specfleet run-window --window {target}` again."
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _results_table(engine, target, tracked)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _app(settings: Settings) -> Celery:
    from specfleet.worker.app import make_app

    return make_app(settings)


@contextmanager
def _in_process_worker(app: Celery, enabled: bool) -> Iterator[None]:
    """A solo Celery worker on a thread of this command (no server, no other process)."""
    if not enabled:
        yield
        return
    controller = app.WorkController(
        pool_cls="solo",
        concurrency=1,
        hostname=f"run-window-{threading.get_ident()}@localhost",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    thread = threading.Thread(target=controller.start, name="specfleet-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        controller.stop(in_sighandler=False)
        thread.join(timeout=30)


def _wait_with_progress(engine: Engine, window: str, ids: Sequence[int], hint: bool) -> None:
    total = len(ids)
    last_change, last_counts = time.monotonic(), None
    with Progress(
        TextColumn(f"[bold]{window}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("evaluations", total=total, detail="")
        while True:
            counts = fanout.window_progress(engine, window, ids)
            done = counts.get("done", 0)
            detail = f"running {counts.get('running', 0)}, queued {counts.get('queued', 0)}"
            progress.update(bar, completed=done, detail=detail)
            if done >= total:
                return
            if counts != last_counts:
                last_change, last_counts = time.monotonic(), counts
            elif hint and time.monotonic() - last_change > IDLE_HINT_SECONDS:
                progress.console.print(
                    f"nothing has moved for {IDLE_HINT_SECONDS} s: is a worker running? "
                    "Start one with `specfleet worker` (or use --in-process)."
                )
                last_change = time.monotonic()
            time.sleep(POLL_SECONDS)


def _results_table(engine: Engine, window: str, ids: Sequence[int] | None) -> None:
    query = select(Evaluation).where(Evaluation.window == window)
    if ids is not None:
        query = query.where(col(Evaluation.id).in_(list(ids)))
    with session_scope(engine) as session:
        rows = list(session.exec(query.order_by(col(Evaluation.product_id))).all())
        urls = _merge_request_urls(session, [row.id for row in rows if row.id is not None])
    table = Table(title=f"Window {window}", title_justify="left")
    for name in ("product", "trigger", "outcome", "duration", "merge request or reason"):
        table.add_column(name, justify="right" if name == "duration" else "left")
    tally: dict[str, int] = {}
    for row in rows:
        outcome = row.outcome or row.status
        tally[outcome] = tally.get(outcome, 0) + 1
        style = OUTCOME_STYLE.get(outcome, "")
        table.add_row(
            escape(row.product_id),
            row.trigger,
            f"[{style}]{escape(outcome)}[/]" if style else escape(outcome),
            _duration(row.started_at, row.finished_at),
            escape(_merge_request(row, urls) or _reason(row)),
        )
    console.print(table)
    if tally:
        console.print(", ".join(f"{count} {name}" for name, count in sorted(tally.items())))


def _merge_request_urls(session: Any, evaluation_ids: Sequence[int]) -> dict[int, str]:
    if not evaluation_ids:
        return {}
    pairs = session.exec(
        select(Proposal.evaluation_id, MergeRequest.url)
        .join(MergeRequest, col(MergeRequest.proposal_id) == col(Proposal.id))
        .where(col(Proposal.evaluation_id).in_(list(evaluation_ids)))
    ).all()
    return {int(evaluation_id): url or "" for evaluation_id, url in pairs if evaluation_id}


def _merge_request(row: Evaluation, urls: dict[int, str]) -> str:
    url = (row.summary or {}).get("merge_request")
    return url if isinstance(url, str) else urls.get(row.id or 0, "")


def _reason(row: Evaluation) -> str:
    reason = row.error or (row.summary or {}).get("reason") or ""
    return str(reason)[:160]


def _duration(started: dt.datetime | None, finished: dt.datetime | None) -> str:
    if started is None or finished is None:
        return ""
    seconds = (finished - started).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
