"""The fault suite's fleet: 40 products, its own PostgreSQL and Redis, real worker processes.

The servers are this package's own throwaway ones (tests/support/servers.py), whatever
SPECFLEET_TEST_* says, because the scenarios stop, kill and restart them. Every test gets a
fresh database on that PostgreSQL and an empty Redis. Test settings (stated here, used by
every process): a lease of 30 s renewed every 10 s, a sweep every 5 s that re-sends queued
evaluations unclaimed for 15 s, database outages retried for 90 s before a message is handed
back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.settings import get_settings
from specfleet.scheduler.due import Schedule
from specfleet.scheduler.fanout import fan_out_window
from specfleet.worker.app import make_app
from specfleet.worker.tasks import send_evaluations
from tests.conftest import SPECFLEET
from tests.support.fake_index import IndexScript, fake_index
from tests.support.servers import ThrowawayPostgres, ThrowawayRedis
from tests.worker.fleet import ADVISORIES, WorkerProcess, footfall_repo, register, worker_env

FLEET_SIZE = 40
SCHEDULE = Schedule.from_config("0 6 * * 1", "UTC")
TEST_SETTINGS = {
    "SPECFLEET_LEASE_SECONDS": "30",
    "SPECFLEET_SWEEP_SECONDS": "5",
    "SPECFLEET_STALE_AFTER": "15",
    "SPECFLEET_DATABASE_OUTAGE": "90",
    "SPECFLEET_TASK_TIME_LIMIT": "300",
    "SPECFLEET_TASK_SOFT_TIME_LIMIT": "280",
    "SPECFLEET_LOG_FORMAT": "json",
}
# every product of the fleet is paused for the scheduler's own window ticks: the scenarios
# queue their windows themselves, the scheduler only sweeps
PAUSED_SCHEDULES = "{" + ", ".join(f'"p{n:02d}": "paused"' for n in range(FLEET_SIZE)) + "}"


@dataclass
class Servers:
    postgres: ThrowawayPostgres
    redis: ThrowawayRedis


@pytest.fixture(scope="package")
def servers() -> Iterator[Servers]:
    postgres = ThrowawayPostgres().start()
    redis = ThrowawayRedis().start()
    try:
        yield Servers(postgres, redis)
    finally:
        redis.remove()
        postgres.remove()


@pytest.fixture(scope="package")
def index_url() -> Iterator[str]:
    """Release facts from a recorded index (no PyPI for the healthy products' assessment)."""
    with fake_index(IndexScript.recorded()) as url:
        yield url


@dataclass
class Fleet:
    """One scenario's fleet: settings for every process, the engine, workers, scheduler."""

    servers: Servers
    engine: Engine
    env: dict[str, str]
    logs: Path
    products: list[str]
    workers: list[WorkerProcess] = field(default_factory=list)
    scheduler: WorkerProcess | None = None

    def start_worker(self, concurrency: int = 2, name: str | None = None) -> WorkerProcess:
        log = self.logs / f"worker-{len(self.workers)}.log"
        worker = WorkerProcess(
            self.env, log, ("--pool", "prefork", "--concurrency", str(concurrency))
        ).start()
        self.workers.append(worker)
        return worker

    def start_scheduler(self) -> WorkerProcess:
        scheduler = SchedulerProcess(self.env, self.logs / "scheduler.log").start()
        self.scheduler = scheduler
        return scheduler

    @property
    def log_files(self) -> list[Path]:
        return sorted(self.logs.glob("*.log"))

    def enqueue(self, window: str) -> list[int]:
        app = make_app(get_settings())
        try:
            result = fan_out_window(
                self.engine, SCHEDULE, window, None, lambda ids: send_evaluations(app, ids)
            )
        finally:
            app.close()
        return result.queued

    def stop_all(self) -> None:
        for process in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            process.kill()


@dataclass
class SchedulerProcess(WorkerProcess):
    """``specfleet scheduler`` (Celery beat) in its own process group."""

    def start(self) -> SchedulerProcess:
        import subprocess

        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [SPECFLEET, "scheduler"],
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self


def fresh_database(admin_url: str) -> str:
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def fleet(
    servers: Servers,
    index_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Fleet]:
    """40 registered products (p00..p39) of one healthy repository, fleet-mode settings."""
    import redis

    if servers.redis.process is None:
        servers.redis.start()
    redis.Redis.from_url(servers.redis.url).flushall()
    database_url = fresh_database(servers.postgres.admin_url)
    settings = {
        **TEST_SETTINGS,
        "SPECFLEET_REDIS_URL": servers.redis.url,
        "SPECFLEET_DATABASE_URL": database_url,
        "SPECFLEET_ADVISORY_DIR": str(ADVISORIES),
        "SPECFLEET_INDEX_URL": index_url,
        "SPECFLEET_SCHEDULE_OVERRIDES": PAUSED_SCHEDULES,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    engine = make_engine(database_url)
    ensure_schema(engine)
    repo = footfall_repo(tmp_path / "footfall")
    products = [f"p{n:02d}" for n in range(FLEET_SIZE)]
    register(engine, dict.fromkeys(products, repo))
    logs = tmp_path / "logs"
    logs.mkdir()
    fleet = Fleet(servers, engine, worker_env({}), logs, products)
    started = time.monotonic()
    try:
        yield fleet
    finally:
        fleet.stop_all()
        engine.dispose()
        request.node.user_properties.append(("seconds", round(time.monotonic() - started, 1)))
