"""The marts as finance and account managers read them, from the DuckDB file dbt build wrote."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

WAREHOUSE = Path(__file__).resolve().parent.parent / "warehouse.duckdb"


@pytest.fixture(scope="module")
def warehouse():  # type: ignore[no-untyped-def]
    if not WAREHOUSE.is_file():
        pytest.fail("warehouse.duckdb is missing: run `dbt build --profiles-dir .` first")
    connection = duckdb.connect(str(WAREHOUSE), read_only=True)
    yield connection
    connection.close()


def test_revenue_counts_completed_orders_only(warehouse) -> None:  # type: ignore[no-untyped-def]
    rows = warehouse.execute(
        "select order_date, completed_orders, revenue from daily_revenue order by order_date"
    ).fetchall()
    assert [(str(day), count, amount) for day, count, amount in rows] == [
        ("2025-03-01", 2, Decimal("60.50")),
        ("2025-03-02", 2, Decimal("262.34")),
        ("2025-03-03", 2, Decimal("75.66")),
    ]


def test_every_customer_appears_once(warehouse) -> None:  # type: ignore[no-untyped-def]
    rows = warehouse.execute(
        "select customer_id, completed_orders, lifetime_revenue from customer_orders "
        "order by customer_id"
    ).fetchall()
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[4] == (5, 0, Decimal("0.00"))


def test_emails_are_lower_case(warehouse) -> None:  # type: ignore[no-untyped-def]
    emails = [row[0] for row in warehouse.execute("select email from customer_orders").fetchall()]
    assert emails and all(email == email.lower() for email in emails)
