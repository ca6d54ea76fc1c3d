"""Fleet reliability with real Redis, PostgreSQL and worker processes: a worker killed mid-
evaluation, Redis restarted mid-window, and products that vanish, break or hang."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import func, select

from specfleet.core.db import MergeRequest, StageResult, ensure_schema, make_engine, session_scope
from specfleet.core.settings import Settings, get_settings
from specfleet.scheduler.due import Schedule
from specfleet.scheduler.fanout import fan_out_window
from specfleet.worker.app import make_app
from specfleet.worker.tasks import send_evaluations
from tests.conftest import SPECFLEET, commit_files
from tests.support.fake_index import IndexScript, fake_index
from tests.worker.fleet import (
    ADVISORIES,
    PrivateRedis,
    WorkerProcess,
    evaluations,
    footfall_repo,
    register,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
WINDOW = "2026-W48"
SCHEDULE = Schedule.from_config("0 6 * * 1", "UTC")
# short limits so a killed worker's message comes back within a minute and a half
TIME_LIMIT = 60


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fleet(
    monkeypatch: pytest.MonkeyPatch, redis_server: PrivateRedis, postgres_url: str
) -> Iterator[Settings]:
    """Fleet-mode settings (private Redis, a fresh PostgreSQL database) for this process and
    every worker it starts."""
    values = {
        "SPECFLEET_REDIS_URL": redis_server.url,
        "SPECFLEET_DATABASE_URL": postgres_url,
        "SPECFLEET_ADVISORY_DIR": str(ADVISORIES),
        "SPECFLEET_TASK_TIME_LIMIT": str(TIME_LIMIT),
        "SPECFLEET_TASK_SOFT_TIME_LIMIT": str(TIME_LIMIT - 10),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()


def engine_for(settings: Settings) -> Engine:
    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    return engine


def enqueue_window(settings: Settings, engine: Engine) -> list[int]:
    app = make_app(settings)
    try:
        result = fan_out_window(
            engine, SCHEDULE, WINDOW, None, lambda ids: send_evaluations(app, ids)
        )
    finally:
        app.close()
    return result.queued


def stage_written(engine: Engine, evaluation_id: int, stage: str) -> bool:
    with session_scope(engine) as session:
        found = session.exec(
            select(func.count())
            .select_from(StageResult)
            .where(StageResult.evaluation_id == evaluation_id, StageResult.stage == stage)
        ).one()
    return bool(found)


@pytest.mark.network
def test_worker_killed_mid_evaluation_is_redelivered_and_opens_one_merge_request(
    fleet: Settings, tmp_path: Path
) -> None:
    """SIGKILL to a whole worker during verification: another worker finishes the evaluation
    after the visibility timeout, and exactly one merge request exists."""
    engine = engine_for(fleet)
    # a vulnerable pin makes a proposal; a slow build keeps the first worker in verification
    repo = footfall_repo(tmp_path / "slow", vulnerable=True, build_sleep=4)
    register(engine, {"slow": repo})
    [evaluation_id] = enqueue_window(fleet, engine)
    env = worker_env({})  # release facts from PyPI: the recorded index lacks requests
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = WorkerProcess(env, first_log).start()
    try:
        wait_for(
            lambda: stage_written(engine, evaluation_id, "apply"),
            240,
            "the evaluation to reach verification",
            [first_log],
        )
    finally:
        first.kill()
    [row] = evaluations(engine)
    assert row.status == "running", "the kill must land mid-evaluation"

    second = WorkerProcess(env, second_log).start()
    try:
        wait_for(
            lambda: evaluations(engine)[0].status == "done",
            TIME_LIMIT + 240,
            "the redelivered evaluation to finish",
            [first_log, second_log],
        )
    finally:
        second.stop()
    [row] = evaluations(engine)
    assert row.outcome == "proposed", (row.error, row.summary)
    assert row.attempts == 2
    with session_scope(engine) as session:
        requests = session.exec(select(MergeRequest).where(MergeRequest.product_id == "slow")).all()
    assert len(requests) == 1 and requests[0].state == "open"


@pytest.mark.network
def test_pool_process_killed_mid_evaluation_is_requeued_at_once(
    fleet: Settings, tmp_path: Path
) -> None:
    """SIGKILL to the worker's pool processes only: the worker rejects the message back to the
    queue (no visibility timeout to wait for), a fresh pool process finishes it, one MR."""
    engine = engine_for(fleet)
    repo = footfall_repo(tmp_path / "slow", vulnerable=True, build_sleep=4)
    register(engine, {"slow": repo})
    [evaluation_id] = enqueue_window(fleet, engine)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_env({}), log).start()
    try:
        wait_for(
            lambda: stage_written(engine, evaluation_id, "apply"),
            240,
            "the evaluation to reach verification",
            [log],
        )
        assert worker.process is not None
        children = subprocess.run(
            ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert children, "a prefork worker has pool processes"
        for child in children:
            os.kill(int(child), signal.SIGKILL)
        wait_for(
            lambda: evaluations(engine)[0].status == "done",
            TIME_LIMIT,  # well inside the visibility timeout: this is the requeue, not Redis
            "the requeued evaluation to finish",
            [log],
        )
    finally:
        worker.stop()
    [row] = evaluations(engine)
    assert row.outcome == "proposed", (row.error, row.summary)
    assert row.attempts == 2
    with session_scope(engine) as session:
        count = session.exec(select(func.count()).select_from(MergeRequest)).one()
    assert count == 1


def test_redis_restart_mid_window_loses_and_repeats_nothing(
    fleet: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    """Redis restarted while a window of 50 products runs: all 50 finish, each exactly once."""
    engine = engine_for(fleet)
    repo = footfall_repo(tmp_path / "footfall")
    products = {f"footfall-{n:02d}": repo for n in range(50)}
    register(engine, products)
    with fake_index(IndexScript.recorded()) as index_url:
        env = worker_env({"SPECFLEET_INDEX_URL": index_url})
        ids = enqueue_window(fleet, engine)
        assert len(ids) == 50
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [WorkerProcess(env, log).start() for log in logs]
        try:

            def finished() -> int:
                return sum(row.status == "done" for row in evaluations(engine))

            wait_for(lambda: finished() >= 3, 180, "the window to start", logs)
            redis_server.restart()
            assert finished() < 50, "the restart must land mid-window"
            wait_for(lambda: finished() == 50, 300, "every evaluation to finish", logs)
        finally:
            for worker in workers:
                worker.stop()
    rows = evaluations(engine, WINDOW)
    assert sorted(row.product_id for row in rows) == sorted(products)
    assert {row.outcome for row in rows} == {"no-change"}, {row.error for row in rows}
    assert [row.id for row in rows if row.attempts != 1] == []


@pytest.mark.network
def test_vanished_invalid_and_hanging_products_end_with_clear_outcomes(
    fleet: Settings, tmp_path: Path
) -> None:
    """A missing repository, an invalid spec and a hanging build each record why; the rest of
    the window completes."""
    engine = engine_for(fleet)
    healthy = footfall_repo(tmp_path / "healthy")
    vanished = footfall_repo(tmp_path / "vanished")
    invalid = footfall_repo(tmp_path / "invalid")
    hanging = footfall_repo(
        tmp_path / "hanging", vulnerable=True, build_sleep=3600, max_build_seconds=5
    )
    register(
        engine, {"healthy": healthy, "vanished": vanished, "invalid": invalid, "hanging": hanging}
    )
    commit_files(invalid, {"dataproduct.yaml": "spec_version: 1\nid: invalid\nowners: nobody\n"})
    for path in sorted(vanished.rglob("*"), reverse=True):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    vanished.rmdir()
    enqueue_window(fleet, engine)
    env = worker_env({})
    log = tmp_path / "worker.log"
    worker = WorkerProcess(env, log).start()
    try:
        wait_for(
            lambda: all(row.status == "done" for row in evaluations(engine)),
            TIME_LIMIT + 300,
            "the window to complete",
            [log],
        )
    finally:
        worker.stop()
    rows = {row.product_id: row for row in evaluations(engine)}
    assert rows["healthy"].outcome == "no-change"
    assert rows["vanished"].outcome == "failed"
    assert f"repository {vanished} does not exist" in (rows["vanished"].error or "")
    assert rows["invalid"].outcome == "failed"
    assert "dataproduct.yaml:1:1: missing required key 'name'" in (rows["invalid"].error or "")
    assert rows["hanging"].outcome == "failed"
    assert "exceeded 5 s" in (rows["hanging"].error or "")
    with session_scope(engine) as session:
        assert session.exec(select(func.count()).select_from(MergeRequest)).one() == 0


def test_two_schedulers_fan_out_a_window_once(fleet: Settings, tmp_path: Path) -> None:
    """Two `specfleet scheduler` processes fire the same tick; the Redis window lock lets one
    fan out and the other find everything queued: one evaluation per product."""
    engine = engine_for(fleet)
    repo = footfall_repo(tmp_path / "footfall")
    products = {f"footfall-{n:02d}": repo for n in range(20)}
    register(engine, products)
    with fake_index(IndexScript.recorded()) as index_url:
        # every minute, so both schedulers fire within a minute of starting
        common = {"SPECFLEET_WINDOW_CRON": "* * * * *", "SPECFLEET_INDEX_URL": index_url}
        logs = [tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"]
        schedulers = []
        for name, log in zip(("a", "b"), logs, strict=True):
            # separate homes: each beat keeps its own schedule file, as on separate machines
            env = worker_env({**common, "SPECFLEET_HOME": str(tmp_path / f"home-{name}")})
            schedulers.append(
                subprocess.Popen(
                    [SPECFLEET, "scheduler", "--loglevel", "INFO"],
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        worker_log = tmp_path / "worker.log"
        worker = WorkerProcess(worker_env(common), worker_log).start()
        try:

            def fanned_out_twice() -> bool:
                return all(
                    log.exists() and "specfleet.fan_out_window" in log.read_text() for log in logs
                )

            wait_for(fanned_out_twice, 150, "both schedulers to send the window", logs)
            wait_for(
                lambda: (
                    len(evaluations(engine)) == len(products)
                    and all(row.status == "done" for row in evaluations(engine))
                ),
                180,
                "the window's evaluations to finish",
                [*logs, worker_log],
            )
            results = worker_log.read_text()
        finally:
            for process in schedulers:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            worker.stop()
    rows = evaluations(engine)
    assert sorted(row.product_id for row in rows) == sorted(products)
    assert len({row.window for row in rows}) == 1
    assert "'queued': 20" in results and "'queued': 0" in results
