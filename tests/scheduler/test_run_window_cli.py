"""`specfleet run-window` in embedded mode: no server, an in-process worker, a results table."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.settings import get_settings
from tests.support.fake_index import IndexScript, fake_index
from tests.worker.fleet import ADVISORIES, evaluations, footfall_repo, register

CLI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def index_url() -> Iterator[str]:
    with fake_index(IndexScript.recorded()) as url:
        yield url


def test_run_window_evaluates_every_product_in_process(
    cli: CLI, tmp_path: Path, index_url: str, specfleet_home: Path
) -> None:
    """One command queues the window, runs it without any server and tabulates each outcome."""
    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    repo = footfall_repo(tmp_path / "footfall")
    register(engine, {"footfall-a": repo, "footfall-b": repo, "gone": tmp_path / "nowhere"})
    env = {"SPECFLEET_ADVISORY_DIR": str(ADVISORIES), "SPECFLEET_INDEX_URL": index_url}

    first = cli("run-window", "--window", "2026-W48", env=env)
    assert first.returncode == 0, first.stderr
    assert "2026-W48: 3 evaluations queued, 0 products not due." in first.stdout
    lines = {line.split()[1]: line for line in first.stdout.splitlines() if line.count("│") > 3}
    assert "no-change" in lines["footfall-a"] and "all pins healthy" in lines["footfall-a"]
    assert "no-change" in lines["footfall-b"]
    assert "failed" in lines["gone"] and "does not exist" in lines["gone"]
    assert "1 failed, 2 no-change" in first.stdout
    assert {row.status for row in evaluations(engine)} == {"done"}

    again = cli("run-window", "--window", "2026-W48", env=env)
    assert again.returncode == 0, again.stderr
    assert "0 evaluations queued, 3 products not due." in again.stdout
    assert len(evaluations(engine)) == 3


def test_run_window_rejects_a_malformed_window(cli: CLI) -> None:
    """A window that is not an ISO week is a usage error (exit 2) naming the value."""
    result = cli("run-window", "--window", "2026-48")
    assert result.returncode == 2
    assert "'2026-48' is not an ISO week" in result.stderr


def test_run_window_without_waiting_leaves_the_evaluations_queued(
    cli: CLI, tmp_path: Path, specfleet_home: Path
) -> None:
    """--no-wait only queues: the evaluations wait in the embedded broker for a worker."""
    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    result = cli("run-window", "--window", "2026-W48", "--no-wait")
    assert result.returncode == 0, result.stderr
    assert "1 evaluation queued, 0 products not due." in result.stdout
    assert [row.status for row in evaluations(engine)] == ["queued"]
    assert (specfleet_home / "broker.sqlite").exists()


def test_run_window_refuses_while_the_fleet_is_paused(
    cli: CLI, tmp_path: Path, specfleet_home: Path
) -> None:
    """A paused fleet queues nothing: exit 1 and who paused it, and how to resume."""
    from specfleet.scheduler.pause import pause_fleet

    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    pause_fleet(engine, "ops@example.com", "incident 42")
    result = cli("run-window", "--window", "2026-W48")
    assert result.returncode == 1
    assert "paused by ops@example.com" in result.stderr and "incident 42" in result.stderr
    assert "specfleet fleet resume" in result.stderr
    assert evaluations(engine) == []


def test_run_window_with_the_database_down_says_so_in_one_line(cli: CLI) -> None:
    """PostgreSQL unreachable: exit 2 and one line naming the database, no traceback."""
    down = {"SPECFLEET_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    result = cli("run-window", "--window", "2026-W48", env=down)
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_run_window_with_the_broker_down_says_so_in_one_line(
    cli: CLI, tmp_path: Path, specfleet_home: Path
) -> None:
    """Redis unreachable: exit 2 and one line naming the broker, no traceback."""
    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    result = cli(
        "run-window", "--window", "2026-W48", env={"SPECFLEET_REDIS_URL": "redis://127.0.0.1:9/0"}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot reach the broker" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_manual_evaluate_refuses_while_paused_unless_forced(
    cli: CLI, tmp_path: Path, specfleet_home: Path
) -> None:
    """A paused fleet: `evaluate` queues nothing and says who paused; `--force` queues it."""
    from specfleet.scheduler.pause import pause_fleet

    engine = make_engine(get_settings().resolved_database_url)
    ensure_schema(engine)
    register(engine, {"footfall": footfall_repo(tmp_path / "footfall")})
    pause_fleet(engine, "ops@example.com", "incident 43")
    refused = cli("evaluate", "footfall", "--window", "2026-W48")
    assert refused.returncode == 1
    assert "paused by ops@example.com" in refused.stderr and "--force" in refused.stderr
    assert evaluations(engine) == []
    forced = cli("evaluate", "footfall", "--window", "2026-W48", "--force")
    assert forced.returncode == 0, forced.stderr
    assert [row.status for row in evaluations(engine)] == ["queued"]
