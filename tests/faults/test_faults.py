"""Fault injection on a 40-product fleet: real PostgreSQL and Redis (stopped, killed,
restarted), real `specfleet worker` and `specfleet scheduler` processes (SIGKILLed).

Every scenario ends the same way: each of the window's evaluations finished exactly once
(one row per product, done, not failed; claimed once unless its worker was killed), with
exactly one merge request where one is due and none elsewhere. Recovery times are measured
by bench/faults.py; the timeouts here are generous bounds, not performance assertions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from specfleet.core.db import Evaluation, MergeRequest, StageResult, session_scope
from specfleet.core.settings import get_settings
from specfleet.scheduler.fanout import queue_policy_evaluations
from specfleet.scheduler.pause import pause_fleet, resume_fleet
from specfleet.worker.app import make_app
from specfleet.worker.tasks import paused_check, send_evaluations
from tests.conftest import SPECFLEET
from tests.faults.conftest import FLEET_SIZE, Fleet
from tests.worker.fleet import evaluations, footfall_repo, register, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.redis]
PACK_V1 = Path(__file__).resolve().parents[2] / "policies" / "pack" / "v1"
RECOVERY_BOUND = 300
RecordProperty = Callable[[str, object], None]  # seconds: "recovered within 5 minutes"


def done_count(fleet: Fleet, window: str) -> int:
    with session_scope(fleet.engine) as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(Evaluation)
                .where(Evaluation.window == window, Evaluation.status == "done")
            ).one()
        )


def wait_done(fleet: Fleet, window: str, count: int, timeout: float = RECOVERY_BOUND) -> None:
    wait_for(
        lambda: done_count(fleet, window) >= count,
        timeout,
        f"{count} evaluations of {window} to finish",
        fleet.log_files,
    )


def fetches(fleet: Fleet) -> dict[int, int]:
    """How many times each evaluation's pipeline started (its ``fetch`` stage rows)."""
    with session_scope(fleet.engine) as session:
        rows = session.exec(
            select(StageResult.evaluation_id, func.count())
            .where(StageResult.stage == "fetch")
            .group_by(col(StageResult.evaluation_id))
        ).all()
    return {int(evaluation_id): int(count) for evaluation_id, count in rows}


def assert_exactly_once(
    fleet: Fleet,
    window: str,
    due: frozenset[str] = frozenset(),
    interrupted: frozenset[str] | None = frozenset(),
) -> None:
    """One finished row per product, none failed, one merge request per due product; every
    evaluation claimed and started once except the ``interrupted`` ones (None: any may have
    been claimed again, as when a database outage outlasts the leases)."""
    rows = evaluations(fleet.engine, window)
    by_product: dict[str, list[Evaluation]] = {}
    for row in rows:
        by_product.setdefault(row.product_id, []).append(row)
    assert sorted(by_product) == sorted([*fleet.products, *due]), "one row per product"
    started = fetches(fleet)
    for product, product_rows in by_product.items():
        assert len(product_rows) == 1, (product, [r.id for r in product_rows])
        [row] = product_rows
        assert row.status == "done", (product, row.status)
        assert row.outcome not in ("failed", "given-up"), (product, row.outcome, row.error)
        if interrupted is not None and product not in interrupted:
            # claimed and run once: no second delivery ran it again
            assert row.attempts == 1, (product, row.attempts)
            assert started.get(row.id or 0, 0) <= 1, (product, started.get(row.id or 0))
    with session_scope(fleet.engine) as session:
        requests = session.exec(select(MergeRequest.product_id)).all()
    assert sorted(requests) == sorted(due), "exactly one merge request where one is due"


def test_database_outage_of_15_seconds_loses_and_repeats_nothing(
    fleet: Fleet, record_property: RecordProperty
) -> None:
    """(a) PostgreSQL stops for 15 s in the middle of a 40-product window."""
    window = "2026-W40"
    ids = fleet.enqueue(window)
    assert len(ids) == FLEET_SIZE
    fleet.start_worker()
    fleet.start_worker()
    fleet.start_scheduler()
    wait_done(fleet, window, 3)
    fleet.servers.postgres.stop("immediate")  # a crash: connections cut mid-transaction
    time.sleep(15)
    fleet.servers.postgres.start()
    back = time.monotonic()
    wait_done(fleet, window, FLEET_SIZE)
    record_property("recovery_seconds", round(time.monotonic() - back, 1))
    # a lease can run out during a 15 s outage (heartbeats cannot reach the database): those evaluations are claimed again, and
    # still finish once
    assert_exactly_once(fleet, window, interrupted=None)


@pytest.mark.network
def test_worker_sigkilled_mid_build_is_recovered_within_minutes(
    fleet: Fleet, tmp_path: Path, record_property: RecordProperty
) -> None:
    """(b) SIGKILL to a whole worker while it builds: the lease expires, the sweep re-sends
    the evaluation, another worker finishes it with one merge request; the dead worker's
    build processes and scratch directories are cleaned up when a worker starts."""
    window = "2026-W41"
    slow = footfall_repo(tmp_path / "slow", vulnerable=True, build_sleep=20, max_build_seconds=120)
    register(fleet.engine, {"slow": slow})
    ids = fleet.enqueue(window)
    assert len(ids) == FLEET_SIZE + 1
    victim = fleet.start_worker(concurrency=2)
    fleet.start_scheduler()
    slow_id = next(row.id for row in evaluations(fleet.engine, window) if row.product_id == "slow")

    def building() -> bool:
        with session_scope(fleet.engine) as session:
            return bool(
                session.exec(
                    select(func.count())
                    .select_from(StageResult)
                    .where(StageResult.evaluation_id == slow_id, StageResult.stage == "apply")
                ).one()
            )

    wait_for(building, RECOVERY_BOUND, "the slow product to reach its build", fleet.log_files)
    time.sleep(3)  # the verifier's build of the candidate is sleeping now
    victim.kill()
    killed_at = time.monotonic()
    owners = get_settings().home / "work" / "owners"
    dead_owner_dirs = set(owners.iterdir()) if owners.exists() else set()
    fleet.start_worker(concurrency=2)
    wait_for(
        lambda: (
            evaluations(fleet.engine, window)[-1].status == "done"
            and done_count(fleet, window) == FLEET_SIZE + 1
        ),
        RECOVERY_BOUND,
        "the killed worker's evaluation to be recovered",
        fleet.log_files,
    )
    recovered = time.monotonic() - killed_at
    record_property("recovery_seconds", round(recovered, 1))
    assert_exactly_once(fleet, window, due=frozenset({"slow"}), interrupted=frozenset({"slow"}))
    row = next(r for r in evaluations(fleet.engine, window) if r.product_id == "slow")
    assert row.outcome == "proposed" and row.attempts >= 2, (row.outcome, row.attempts)
    assert recovered < RECOVERY_BOUND
    # the new worker's pool processes reaped the dead ones' scratch space
    assert not any(directory.exists() for directory in dead_owner_dirs)
    leftovers = [pid for pid in processes_working_in(owners) if pid not in live_workers(fleet)]
    assert leftovers == [], "the killed worker's build processes were reaped"


def test_redis_restart_without_persistence_loses_nothing(
    fleet: Fleet, record_property: RecordProperty
) -> None:
    """(c) Redis killed mid-window and started empty: the sweep re-sends what was lost."""
    window = "2026-W42"
    assert len(fleet.enqueue(window)) == FLEET_SIZE
    fleet.start_worker(concurrency=1)
    fleet.start_scheduler()
    wait_done(fleet, window, 3)
    fleet.servers.redis.kill()
    fleet.servers.redis.start()  # same port, nothing in it
    back = time.monotonic()
    wait_done(fleet, window, FLEET_SIZE)
    record_property("recovery_seconds", round(time.monotonic() - back, 1))
    assert_exactly_once(fleet, window)


def test_the_same_message_delivered_twice_runs_once_and_every_log_line_names_it(
    fleet: Fleet,
) -> None:
    """(d) Every evaluation's message is sent twice: each evaluation runs exactly once. The
    workers log JSON (SPECFLEET_LOG_FORMAT=json): every line of an evaluation carries its
    evaluation_id, product, window, trigger, task_id and stage."""
    window = "2026-W43"
    ids = fleet.enqueue(window)
    app = make_app(get_settings())
    try:
        send_evaluations(app, ids)  # the duplicates: a redelivery, a re-send
    finally:
        app.close()
    fleet.start_worker()
    fleet.start_worker()
    wait_done(fleet, window, FLEET_SIZE)
    # the second copies are consumed too (dropped), not left to run later
    wait_for(lambda: _queue_empty(fleet), 120, "the duplicate messages to be consumed")
    assert_exactly_once(fleet, window)
    dropped = sum(
        1
        for log in fleet.log_files
        for line in log.read_text(errors="replace").splitlines()
        if "duplicate delivery dropped" in line or '"skipped": "done"' in line
        or "already done" in line
    )  # fmt: skip
    assert dropped <= FLEET_SIZE
    for worker in fleet.workers:
        worker.stop()  # warm shutdown: its last lines are written too
    assert_every_log_line_names_its_evaluation(fleet, window)


def processes_working_in(directory: Path) -> list[int]:
    """Processes whose working directory is under ``directory`` (builds run in scratch)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:
            continue
        if cwd.is_relative_to(directory.resolve()):
            found.append(int(entry.name))
    return found


def live_workers(fleet: Fleet) -> set[int]:
    """The running worker processes' pids and their pool processes' (never counted as
    leftovers: only builds work inside the scratch space)."""
    pids = {worker.process.pid for worker in fleet.workers if worker.process is not None}
    for pid in list(pids):
        children = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        pids.update(int(child) for child in children)
    return pids


def _queue_empty(fleet: Fleet) -> bool:
    import redis

    client = redis.Redis.from_url(fleet.servers.redis.url)
    try:
        return int(client.llen("specfleet")) == 0
    finally:
        client.close()


def publish_one_rule(fleet: Fleet, tmp_path: Path) -> int:
    """Publish a one-rule pack (a dependency rule: no semgrep run per evaluation)."""
    from specfleet.policies.packs import load_pack
    from specfleet.policies.store import publish

    pack = tmp_path / "pack"
    shutil.copytree(PACK_V1, pack, ignore=shutil.ignore_patterns("*"))
    (pack / "rules").mkdir(exist_ok=True)
    shutil.copy(PACK_V1 / "rules" / "ORG-DEP-002.yaml", pack / "rules")
    outcome = publish(fleet.engine, load_pack(pack), "settle releases", "architect@example.com")
    return int(outcome.policy_set.version)


def test_pause_during_a_policy_publication_fan_out_holds_the_rest(
    fleet: Fleet, tmp_path: Path
) -> None:
    """(e) The fleet is paused after the first batch of a publication's fan-out: the rest is
    held (nothing sent, nothing run, the sweep included) until resume, then each runs once."""
    import specfleet.scheduler.fanout as fanout

    version = publish_one_rule(fleet, tmp_path)

    fleet.start_worker()
    fleet.start_scheduler()
    app = make_app(get_settings())
    real_check = paused_check(fleet.engine)
    batches = 0

    def operator_pauses_after_first_batch() -> bool:
        nonlocal batches
        batches += 1
        if batches == 2:
            pause_fleet(fleet.engine, "ops@example.com", "incident")
        return real_check()

    original_batch = fanout.DEFAULT_BATCH
    fanout.DEFAULT_BATCH = 10
    try:
        queued = queue_policy_evaluations(
            fleet.engine,
            fleet.products,
            policy_version=version,
            dispatch=lambda ids: send_evaluations(app, ids),
            pause_check=operator_pauses_after_first_batch,
        )
    finally:
        fanout.DEFAULT_BATCH = original_batch
    assert queued == FLEET_SIZE
    [window] = {row.window for row in evaluations(fleet.engine)}
    wait_done(fleet, window, 10)
    time.sleep(20)  # several sweeps (5 s) and a stale period (15 s) pass while paused
    assert done_count(fleet, window) == 10, "only the batch sent before the pause ran"
    resume_fleet(fleet.engine, "ops@example.com")
    wait_done(fleet, window, FLEET_SIZE)
    app.close()
    assert_exactly_once(fleet, window)


def test_run_window_with_the_database_down_prints_one_line_and_exits_2(fleet: Fleet) -> None:
    """The database stopped: `specfleet run-window` says so in one line, exit code 2."""
    fleet.servers.postgres.stop()
    try:
        result = subprocess.run(
            [SPECFLEET, "run-window", "--window", "2026-W44", "--no-wait"],
            capture_output=True,
            text=True,
            env={**fleet.env, "COLUMNS": "200", "NO_COLOR": "1"},
            timeout=120,
        )
    finally:
        fleet.servers.postgres.start()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "database" in lines[0].lower() and "Traceback" not in result.stderr


CORRELATION = ("evaluation_id", "product", "window", "trigger", "task_id", "stage")


def assert_every_log_line_names_its_evaluation(fleet: Fleet, window: str) -> None:
    """Workers log JSON only (Celery's lines included), and every line logged while an
    evaluation runs names it: evaluation, product, window, trigger, task and stage."""
    lines = [
        line for log in fleet.log_files for line in log.read_text().splitlines() if line.strip()
    ]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a worker line is not JSON: {line[:300]}")
    ids = {row.id for row in evaluations(fleet.engine, window)}
    during = [record for record in records if record.get("evaluation_id") in ids]
    staged = [record for record in during if record.get("stage")]
    assert {record["evaluation_id"] for record in staged} == ids
    for record in staged:
        missing = [name for name in CORRELATION if record.get(name) in (None, "")]
        assert not missing, (missing, record)
    stages = {record["stage"] for record in staged}
    assert {"fetch", "fingerprint"} <= stages, stages
    # lines of an evaluation outside any stage (its claim, its end) still name it fully
    for record in during:
        missing = [name for name in CORRELATION[:-1] if record.get(name) in (None, "")]
        assert not missing, (missing, record)
