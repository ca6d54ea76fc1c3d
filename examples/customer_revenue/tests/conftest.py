"""Shared fixtures: a copy of the pinned inputs, and the build run the way the verifier runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = {
    "orders": REPO / "fixtures" / "orders.csv",
    "customers": REPO / "fixtures" / "customers.csv",
}


def copy_inputs(directory: Path) -> Path:
    """Lay the fixtures out as the verifier does: ``<input name>.<format>``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, fixture in FIXTURES.items():
        shutil.copyfile(fixture, directory / f"{name}.csv")
    return directory


def run_build(inputs: Path, outputs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.run", "--input", str(inputs), "--output", str(outputs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def query(sql: str, database: Path | None = None) -> list[tuple]:
    """Run one query on a fresh connection (read-only on the product's DuckDB file)."""
    con = duckdb.connect(str(database), read_only=True) if database else duckdb.connect()
    try:
        # Render TIMESTAMPTZ values in UTC whatever the machine's time zone.
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return copy_inputs(tmp_path / "inputs")


@pytest.fixture(scope="session")
def outputs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product built once from the fixtures."""
    base = tmp_path_factory.mktemp("build")
    result = run_build(copy_inputs(base / "inputs"), base / "outputs")
    assert result.returncode == 0, result.stderr
    return base / "outputs"


@pytest.fixture(scope="session")
def daily_revenue(outputs_dir: Path) -> dict[tuple, dict]:
    """daily_revenue rows keyed by (day as ISO text, country)."""
    path = str(outputs_dir / "daily_revenue.parquet").replace("'", "''")
    rows = query(
        "SELECT CAST(day AS VARCHAR), country, order_count, customer_count, revenue,"
        f" avg_order_value FROM read_parquet('{path}')"
    )
    names = ("day", "country", "order_count", "customer_count", "revenue", "avg_order_value")
    return {(row[0], row[1]): dict(zip(names, row, strict=True)) for row in rows}


@pytest.fixture(scope="session")
def customer_summary(outputs_dir: Path) -> dict[int, dict]:
    """customer_summary rows by customer_id; times as ISO text (no pytz needed)."""
    rows = query(
        "SELECT customer_id, full_name, country, segment, CAST(signed_up_on AS VARCHAR),"
        " strftime(first_order_at, '%Y-%m-%dT%H:%M:%SZ'),"
        " strftime(last_order_at, '%Y-%m-%dT%H:%M:%SZ'),"
        " order_count, lifetime_revenue, is_repeat_customer FROM customer_summary",
        outputs_dir / "customer_summary.duckdb",
    )
    names = (
        "customer_id",
        "full_name",
        "country",
        "segment",
        "signed_up_on",
        "first_order_at",
        "last_order_at",
        "order_count",
        "lifetime_revenue",
        "is_repeat_customer",
    )
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}
