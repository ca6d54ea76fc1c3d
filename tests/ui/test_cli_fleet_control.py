"""`specfleet fleet pause/resume/status`, run as a user would."""

from __future__ import annotations

from specfleet.core.db import Evaluation, MergeRequest, Product, make_engine, session_scope
from specfleet.core.settings import get_settings
from specfleet.scheduler.pause import fleet_paused


def test_pause_status_resume(cli) -> None:  # type: ignore[no-untyped-def]
    """Pause with a reason, see it in status, resume, and see the fleet running again."""
    paused = cli("fleet", "pause", "--reason", "GitLab upgrade tonight")
    assert paused.returncode == 0, paused.stderr
    assert "fleet paused by tester@example.com" in paused.stdout
    assert "GitLab upgrade tonight" in paused.stdout

    status = cli("fleet", "status")
    assert status.returncode == 0, status.stderr
    assert "paused by tester@example.com" in status.stdout
    assert "GitLab upgrade tonight" in status.stdout

    again = cli("fleet", "pause", "--reason", "other")
    assert again.returncode == 0 and "already paused" in again.stdout
    assert "GitLab upgrade tonight" in again.stdout

    resumed = cli("fleet", "resume", env={"SPECFLEET_ACTOR": "bo@example.com"})
    assert resumed.returncode == 0, resumed.stderr
    assert "fleet resumed" in resumed.stdout and "GitLab upgrade tonight" in resumed.stdout
    status = cli("fleet", "status")
    assert "running" in status.stdout and "paused" not in status.stdout

    engine = make_engine(get_settings().resolved_database_url)
    assert fleet_paused(engine) is None


def test_resume_when_running_says_so(cli) -> None:  # type: ignore[no-untyped-def]
    """Resuming a running fleet changes nothing and says there was nothing to resume."""
    result = cli("fleet", "resume")
    assert result.returncode == 0
    assert "not paused" in result.stdout


def test_status_counts_work_in_flight(cli) -> None:  # type: ignore[no-untyped-def]
    """Status shows active products, queued and running evaluations and open merge requests."""
    engine = make_engine(get_settings().resolved_database_url)
    from specfleet.core.db import ensure_schema

    ensure_schema(engine)
    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="file:///srv/orders.git"))
        session.flush()
        for index, status in enumerate(["queued", "queued", "queued", "running", "done"]):
            session.add(
                Evaluation(
                    product_id="orders",
                    window="2026-W48",
                    trigger="weekly",
                    fingerprint=str(index),
                    status=status,
                )
            )
        session.add(MergeRequest(product_id="orders", forge="local", title="t"))
    result = cli("fleet", "status")
    assert result.returncode == 0, result.stderr
    lines = {" ".join(line.strip("│ ").split()) for line in result.stdout.splitlines()}
    assert any(line.startswith("active products") and line.endswith("1") for line in lines)
    assert any("evaluations queued" in line and line.endswith("3") for line in lines)
    assert any("evaluations running" in line and line.endswith("1") for line in lines)
    assert any("open merge requests" in line and line.endswith("1") for line in lines)


def test_unreachable_database_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    """A database that cannot be reached is an environment error (exit 2) with a message."""
    result = cli(
        "fleet",
        "pause",
        env={"SPECFLEET_DATABASE_URL": "postgresql+psycopg://specfleet@127.0.0.1:1/specfleet"},
    )
    assert result.returncode == 2
    assert "error" in result.stderr and "Traceback" not in result.stderr


def _status_lines(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_status_shows_broker_depth_queue_ages_expired_leases_and_workers(  # type: ignore[no-untyped-def]
    cli, redis_url: str
) -> None:
    """In fleet mode status shows messages in Redis, the oldest queued and running ages, the
    running evaluations whose lease expired, and the workers that announced themselves."""
    import datetime as dt

    import redis

    from specfleet.core.db import ensure_schema
    from specfleet.core.fleetstate import announce_worker

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.rpush("specfleet", "m1", "m2")
    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="file:///srv/orders.git"))
        session.flush()
        session.add(
            Evaluation(
                product_id="orders", window="2026-W48", trigger="weekly", fingerprint="q",
                status="queued", queued_at=now - dt.timedelta(minutes=10),
            )
        )  # fmt: skip
        session.add(
            Evaluation(
                product_id="orders", window="2026-W47", trigger="weekly", fingerprint="r",
                status="running", claimed_at=now - dt.timedelta(seconds=30),
                lease_owner="w1", lease_expires_at=now - dt.timedelta(seconds=5),
            )
        )  # fmt: skip
    stop = announce_worker(redis_url, "specfleet-1@host")
    try:
        result = cli("fleet", "status", env={"SPECFLEET_REDIS_URL": redis_url})
    finally:
        stop.set()
    assert result.returncode == 0, result.stderr
    rows = _status_lines(result.stdout)
    assert rows["broker depth"] == "2"
    assert rows["oldest queued"] == "10 min"
    assert rows["oldest running"].endswith(" s") and 25 <= int(rows["oldest running"][:-2]) < 120
    assert rows["leases expired"] == "1"
    assert rows["workers seen (last minute)"] == "1"
    assert rows["workers holding leases"] == "1"
    client.flushdb()


def test_status_in_embedded_mode_says_the_broker_figures_are_unavailable(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("fleet", "status")
    assert result.returncode == 0, result.stderr
    rows = _status_lines(result.stdout)
    assert rows["broker depth"] == "n/a (embedded broker)"
    assert rows["oldest queued"] == "-" and rows["leases expired"] == "0"
