"""Requirements on the customer_summary output (ids as in dataproduct.yaml)."""

from __future__ import annotations

from decimal import Decimal

from tests import oracle
from tests.conftest import query


def test_schema(outputs_dir):
    described = query("DESCRIBE customer_summary", outputs_dir / "customer_summary.duckdb")
    assert [(row[0], row[1]) for row in described] == [
        ("customer_id", "BIGINT"),
        ("full_name", "VARCHAR"),
        ("country", "VARCHAR"),
        ("segment", "VARCHAR"),
        ("signed_up_on", "DATE"),
        ("first_order_at", "TIMESTAMP WITH TIME ZONE"),
        ("last_order_at", "TIMESTAMP WITH TIME ZONE"),
        ("order_count", "INTEGER"),
        ("lifetime_revenue", "DECIMAL(12,2)"),
        ("is_repeat_customer", "BOOLEAN"),
    ]


# R5
def test_one_row_per_customer(customer_summary):
    expected_ids = set(oracle.customers()) - oracle.qa_account_ids()
    assert set(customer_summary) == expected_ids


# R5
def test_lifetime_revenue_from_completed_orders(customer_summary):
    for customer_id, row in customer_summary.items():
        orders = [o for o in oracle.completed_orders() if o["customer_id"] == customer_id]
        assert row["order_count"] == len(orders), customer_id
        assert row["lifetime_revenue"] == sum((o["amount"] for o in orders), Decimal("0.00"))
        assert row["is_repeat_customer"] is (len(orders) >= 2)
        if orders:
            assert row["first_order_at"] == min(o["at"] for o in orders).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            assert row["last_order_at"] == max(o["at"] for o in orders).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )


# R2
def test_test_accounts_excluded_from_summary(customer_summary):
    assert 1009 not in customer_summary


# R3
def test_customer_without_orders(customer_summary):
    # 1010 signed up on 27 February and has not ordered yet.
    row = customer_summary[1010]
    assert row["order_count"] == 0
    assert row["lifetime_revenue"] == Decimal("0.00")
    assert row["first_order_at"] is None and row["last_order_at"] is None
    assert row["is_repeat_customer"] is False


# R3
def test_customer_with_only_pending_orders_counts_zero(customer_summary):
    # 1011's 480.00 order 5016 is pending; only the completed 5022 counts.
    assert customer_summary[1011]["order_count"] == 1
    assert customer_summary[1011]["lifetime_revenue"] == Decimal("480.00")


def test_segments_are_known(customer_summary):
    assert {row["segment"] for row in customer_summary.values()} <= {"consumer", "business"}
