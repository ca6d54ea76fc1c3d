"""The evaluate task and the sweep on the ledger: duplicate deliveries dropped, expired or
orphaned leases reclaimed, endless deaths given up, database outages never acknowledged unrun,
and the sweep re-sending what no worker holds."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import Reject
from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import StageResult, ensure_schema, ledger, make_engine, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.settings import Settings, get_settings
from specfleet.scheduler.pause import pause_fleet, resume_fleet
from specfleet.worker.app import make_app
from specfleet.worker.leases import lease_owner, owner_is_dead
from specfleet.worker.tasks import EVALUATE
from tests.support.fake_index import IndexScript, fake_index
from tests.worker.fleet import ADVISORIES, evaluations, footfall_repo, register

WINDOW = "2026-W48"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, specfleet_home: Path) -> Iterator[Settings]:
    with fake_index(IndexScript.recorded()) as index_url:
        monkeypatch.setenv("SPECFLEET_ADVISORY_DIR", str(ADVISORIES))
        monkeypatch.setenv("SPECFLEET_INDEX_URL", index_url)
        monkeypatch.setenv("SPECFLEET_MAX_ATTEMPTS", "3")
        get_settings.cache_clear()
        yield get_settings()
        get_settings.cache_clear()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def queued(engine: Engine, tmp_path: Path) -> int:
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    return ledger.queue(engine, "footfall", WINDOW, "manual")


def deliver(settings: Settings, evaluation_id: int) -> dict[str, object]:
    """One delivery of the evaluate message, run in this process as a worker would."""
    app = make_app(settings)
    try:
        result = app.tasks[EVALUATE].apply(args=(evaluation_id,), task_id="delivery-1")
        return dict(result.get())
    finally:
        app.close()


def stage_count(engine: Engine, evaluation_id: int) -> int:
    with session_scope(engine) as session:
        rows = session.exec(
            select(StageResult).where(StageResult.evaluation_id == evaluation_id)
        ).all()
    return len(rows)


def test_duplicate_delivery_with_a_live_lease_is_dropped(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Another worker (another host) holds a live lease: this delivery does nothing at all."""
    evaluation_id = queued(engine, tmp_path)
    assert ledger.claim(engine, evaluation_id, "t@elsewhere:4242", 600)
    answer = deliver(settings, evaluation_id)
    assert answer["skipped"] == "leased"
    [row] = evaluations(engine)
    assert (row.status, row.lease_owner, row.attempts) == ("running", "t@elsewhere:4242", 1)
    assert stage_count(engine, evaluation_id) == 0


def test_expired_lease_is_reclaimed_and_finished(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A worker died (its lease expired): the next delivery claims it and finishes it."""
    evaluation_id = queued(engine, tmp_path)
    long_ago = utcnow() - dt.timedelta(hours=1)
    assert ledger.claim(engine, evaluation_id, "t@elsewhere:4242", 60, now=long_ago)
    answer = deliver(settings, evaluation_id)
    assert answer["outcome"] == "no-change"
    [row] = evaluations(engine)
    assert (row.status, row.outcome, row.attempts, row.lease_owner) == (
        "done",
        "no-change",
        2,
        None,
    )


def test_live_lease_of_a_killed_process_on_this_host_is_taken_over(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """The lease holder was a process on this host that no longer exists (SIGKILL): the
    redelivered message takes over at once instead of waiting for the lease to expire."""
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = f"t@{socket.gethostname()}:{gone.stdout.strip()}"
    assert owner_is_dead(dead) and not owner_is_dead(lease_owner("x"))
    evaluation_id = queued(engine, tmp_path)
    assert ledger.claim(engine, evaluation_id, dead, 600)
    assert deliver(settings, evaluation_id)["outcome"] == "no-change"
    [row] = evaluations(engine)
    assert (row.status, row.attempts) == ("done", 2)


def test_an_evaluation_whose_workers_keep_dying_is_given_up(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Claimed SPECFLEET_MAX_ATTEMPTS times without finishing: the next delivery gives up,
    with a reason that says so, instead of killing another worker."""
    evaluation_id = queued(engine, tmp_path)
    for attempt in range(3):
        moment = utcnow() - dt.timedelta(hours=3 - attempt)
        assert ledger.claim(engine, evaluation_id, f"t@elsewhere:{attempt}", 60, now=moment)
    assert deliver(settings, evaluation_id)["outcome"] == "given-up"
    [row] = evaluations(engine)
    assert (row.status, row.outcome) == ("done", "given-up")
    assert "claimed 3 times" in (row.error or "")


def test_database_outage_rejects_the_message_for_requeue(
    monkeypatch: pytest.MonkeyPatch, specfleet_home: Path
) -> None:
    """The database stays unreachable past SPECFLEET_DATABASE_OUTAGE: the task retries, then
    rejects the message with requeue (never acknowledging an evaluation it did not run)."""
    from specfleet.worker import tasks

    monkeypatch.setenv("SPECFLEET_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("SPECFLEET_DATABASE_OUTAGE", "2")
    get_settings.cache_clear()
    started = time.monotonic()
    with pytest.raises(Reject) as rejected:
        tasks.evaluate.run(7)
    assert rejected.value.requeue
    assert time.monotonic() - started >= 2  # it kept trying for the configured outage
    get_settings.cache_clear()


def test_sweep_resends_expired_and_stale_and_holds_while_paused(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """The beat's sweep: an expired lease goes back to the queue and is sent again with a
    queued row nobody claimed for longer than SPECFLEET_STALE_AFTER; paused, nothing is sent."""
    register(engine, {"a": footfall_repo(tmp_path / "a"), "b": footfall_repo(tmp_path / "b")})
    long_ago = utcnow() - dt.timedelta(hours=1)
    dead = ledger.queue(engine, "a", WINDOW, "weekly", now=long_ago)
    lost = ledger.queue(engine, "b", WINDOW, "weekly", now=long_ago)
    ledger.claim(engine, dead, "t@elsewhere:1", 60, now=long_ago)
    app = make_app(settings)
    sweep = app.tasks["specfleet.redispatch_stale"]
    try:
        pause_fleet(engine, "ops@example.com", "maintenance")
        held = sweep.apply().get()
        assert (held["dispatched"], held["expired"]) == (0, [dead])
        assert ledger.inspect(engine, dead).state == "queued"  # type: ignore[union-attr]
        resume_fleet(engine, "ops@example.com")
        # the expired lease was re-queued just now: only the long-lost message is stale yet
        assert sweep.apply().get()["stale"] == [lost]
        assert sweep.apply().get()["dispatched"] == 0  # stamped: not re-sent every minute
    finally:
        app.close()
