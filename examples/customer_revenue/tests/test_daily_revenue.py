"""Requirements on the daily_revenue output (ids as in dataproduct.yaml)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests import oracle
from tests.conftest import query


def test_schema(outputs_dir):
    path = str(outputs_dir / "daily_revenue.parquet").replace("'", "''")
    described = query(
        "DESCRIBE SELECT day, country, order_count, customer_count, revenue, avg_order_value "
        f"FROM read_parquet('{path}')"
    )
    assert [(row[0], row[1]) for row in described] == [
        ("day", "DATE"),
        ("country", "VARCHAR"),
        ("order_count", "INTEGER"),
        ("customer_count", "INTEGER"),
        ("revenue", "DECIMAL(12,2)"),
        ("avg_order_value", "DOUBLE"),
    ]


# R1
def test_daily_revenue_counts_only_completed_orders(daily_revenue):
    expected = oracle.expected_daily_revenue()
    assert set(daily_revenue) == set(expected)
    for key, row in daily_revenue.items():
        assert row["order_count"] == expected[key]["order_count"], key
        assert row["customer_count"] == expected[key]["customer_count"], key
        assert row["revenue"] == expected[key]["revenue"], key
        assert row["avg_order_value"] == pytest.approx(
            float(expected[key]["revenue"]) / expected[key]["order_count"], abs=0.01
        )
    # 2025-03-01 FR: 5002 (18.50) + 5007 (145.50); 5018 was refunded, 5003 is a test account.
    assert daily_revenue[("2025-03-01", "FR")]["revenue"] == Decimal("164.00")


# R1
def test_days_are_utc(daily_revenue):
    # 5010 was placed at 00:30 on 2 March in +01:00: still 1 March in UTC.
    assert daily_revenue[("2025-03-01", "NL")]["revenue"] == Decimal("38.20")
    # 5030 was placed at 22:10 on 3 March in -05:00: already 4 March in UTC.
    assert daily_revenue[("2025-03-04", "US")]["revenue"] == Decimal("35.00")


# R2
def test_test_accounts_excluded_from_revenue(daily_revenue):
    # QA's account 1009 completed 5003 and 5012 for 99.99 each; neither may count.
    total = sum(row["revenue"] for row in daily_revenue.values())
    assert total == sum(order["amount"] for order in oracle.completed_orders())
    assert 1009 not in {order["customer_id"] for order in oracle.completed_orders()}


# R4
def test_unknown_customer_revenue(daily_revenue):
    # 5015 belongs to customer 2099, not in the CRM export yet; its pending 5031 is not revenue.
    assert daily_revenue[("2025-03-02", "unknown")]["revenue"] == Decimal("55.00")
    assert ("2025-03-03", "unknown") not in daily_revenue


def test_primary_key_is_unique(outputs_dir):
    path = str(outputs_dir / "daily_revenue.parquet").replace("'", "''")
    duplicates = query(
        f"SELECT day, country FROM read_parquet('{path}') GROUP BY day, country HAVING count(*) > 1"
    )
    assert duplicates == []
