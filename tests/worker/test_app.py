"""The Celery app: broker choice, reliability settings, and the embedded queue surviving a restart."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import Engine

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.settings import Settings, get_settings
from specfleet.scheduler.due import Schedule
from specfleet.scheduler.fanout import fan_out_window
from specfleet.worker.app import broker_urls, is_embedded, make_app
from specfleet.worker.tasks import EVALUATE, retry_delay, send_evaluations
from tests.conftest import SPECFLEET
from tests.support.fake_index import IndexScript, fake_index
from tests.worker.fleet import (
    ADVISORIES,
    WorkerProcess,
    evaluations,
    footfall_repo,
    register,
    wait_for,
    worker_env,
)


def test_embedded_default_needs_no_server(specfleet_home: Path) -> None:
    """Without Redis the broker and results are SQLite files under SPECFLEET_HOME."""
    settings = Settings()
    assert broker_urls(settings) == (
        f"sqla+sqlite:///{specfleet_home / 'broker.sqlite'}",
        f"db+sqlite:///{specfleet_home / 'results.sqlite'}",
    )
    assert is_embedded(settings)


def test_reliability_settings() -> None:
    """Late acks, requeue on a lost worker, one message at a time, limits from settings, JSON."""
    app = make_app(Settings(task_soft_time_limit=100, task_time_limit=120))
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (100, 120)
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert EVALUATE in app.tasks


def test_fleet_mode_uses_redis_with_a_visibility_timeout_above_the_hard_limit() -> None:
    """With a Redis URL, a killed worker's message comes back only after the hard time limit."""
    settings = Settings(redis_url="redis://127.0.0.1:6379/3", task_time_limit=600)
    app = make_app(settings)
    assert broker_urls(settings) == ("redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379/3")
    assert not is_embedded(settings)
    assert app.conf.broker_transport_options["visibility_timeout"] > 600


def test_explicit_broker_wins_over_redis_url() -> None:
    """SPECFLEET_BROKER_URL and SPECFLEET_RESULT_BACKEND override the derived URLs."""
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/3",
        broker_url="redis://broker:6379/1",
        result_backend="db+postgresql://results",
    )
    assert broker_urls(settings) == ("redis://broker:6379/1", "db+postgresql://results")


def test_beat_fires_the_window_at_the_configured_cron_and_time_zone() -> None:
    """The weekly entry is the settings' cron in the settings' time zone, plus tracking."""
    app = make_app(Settings(window_cron="30 5 * * 2", timezone="Europe/Berlin"))
    schedule = app.conf.beat_schedule
    weekly = schedule["weekly-window"]
    assert weekly["task"] == "specfleet.fan_out_window"
    assert weekly["schedule"] == crontab(minute="30", hour="5", day_of_week="2")
    assert app.conf.timezone == "Europe/Berlin"
    assert {entry["task"] for entry in schedule.values()} >= {
        "specfleet.track_merge_requests",
        "specfleet.redispatch_stale",
    }


def test_retry_delay_backs_off_with_jitter_and_honours_retry_after() -> None:
    """Delays grow with each retry, stay under the cap, and never undercut Retry-After."""
    first = [retry_delay(0) for _ in range(50)]
    fifth = [retry_delay(4) for _ in range(50)]
    assert max(first) <= 5 and min(fifth) >= 40
    assert len(set(fifth)) > 1  # jittered
    assert max(retry_delay(20) for _ in range(50)) <= 300
    assert retry_delay(0, retry_after=42) == 42


@pytest.fixture
def index_url() -> Iterator[str]:
    with fake_index(IndexScript.recorded()) as url:
        yield url


@pytest.fixture
def embedded_settings(
    monkeypatch: pytest.MonkeyPatch, index_url: str, specfleet_home: Path
) -> Settings:
    monkeypatch.setenv("SPECFLEET_ADVISORY_DIR", str(ADVISORIES))
    monkeypatch.setenv("SPECFLEET_INDEX_URL", index_url)
    get_settings.cache_clear()
    return get_settings()


def test_embedded_queue_survives_a_restart(embedded_settings: Settings, tmp_path: Path) -> None:
    """Evaluations queued with no worker running are run by a worker started later."""
    engine: Engine = make_engine(embedded_settings.resolved_database_url)
    ensure_schema(engine)
    repo = footfall_repo(tmp_path / "footfall")
    register(engine, {"footfall-a": repo, "footfall-b": repo})

    def enqueue_and_forget() -> int:
        # this app is dropped on return: only the broker file knows about the messages
        first = make_app(embedded_settings)
        schedule = Schedule.from_config("0 6 * * 1", "UTC")
        result = fan_out_window(
            engine, schedule, "2026-W48", None, lambda ids: send_evaluations(first, ids)
        )
        first.close()
        return len(result.queued)

    assert enqueue_and_forget() == 2
    assert {row.status for row in evaluations(engine)} == {"queued"}
    assert (embedded_settings.home / "broker.sqlite").exists()

    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_env({}), log, args=("--pool", "solo")).start()
    try:
        wait_for(
            lambda: all(row.status == "done" for row in evaluations(engine)),
            120,
            "the queued evaluations to run",
            [log],
        )
    finally:
        worker.stop()
    rows = evaluations(engine)
    assert [(row.product_id, row.outcome) for row in rows] == [
        ("footfall-a", "no-change"),
        ("footfall-b", "no-change"),
    ]
    assert all(row.attempts == 1 for row in rows)
    assert os.environ["SPECFLEET_HOME"] == str(embedded_settings.home)


def test_fan_out_task_queues_the_window_and_skips_when_paused(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    """The beat's fan-out task queues due products once; a paused fleet queues nothing."""
    from specfleet.scheduler.pause import pause_fleet, resume_fleet

    engine = make_engine(embedded_settings.resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    app = make_app(embedded_settings)
    task = app.tasks["specfleet.fan_out_window"]
    pause_fleet(engine, "ops@example.com", "freeze for the audit")
    paused = task.apply(args=("2026-W48",)).get()
    assert paused["queued"] == 0 and "paused by ops@example.com" in paused["skipped"]
    assert evaluations(engine) == []
    resume_fleet(engine, "ops@example.com")
    assert task.apply(args=("2026-W48",)).get()["queued"] == 1
    assert task.apply(args=("2026-W48",)).get()["queued"] == 0
    [row] = evaluations(engine)
    assert (row.product_id, row.window, row.status) == ("footfall", "2026-W48", "queued")
    app.close()


def test_manual_evaluate_reaches_the_configured_broker_and_a_worker_runs_it(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    """`specfleet evaluate PRODUCT` (no --now) queues into the embedded broker; a worker runs it."""
    engine = make_engine(embedded_settings.resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    queued = subprocess.run(
        [SPECFLEET, "evaluate", "footfall", "--window", "2026-W48"],
        capture_output=True,
        text=True,
        env=worker_env({}),
        timeout=120,
        check=False,
    )
    assert queued.returncode == 0, queued.stderr
    assert "queued evaluation" in queued.stdout
    [row] = evaluations(engine)
    assert (row.trigger, row.status) == ("manual", "queued")
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_env({}), log, args=("--pool", "solo")).start()
    try:
        wait_for(
            lambda: evaluations(engine)[0].status == "done", 120, "the manual evaluation", [log]
        )
    finally:
        worker.stop()
    assert evaluations(engine)[0].outcome == "no-change"
