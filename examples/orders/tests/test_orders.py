"""The requirements of dataproduct.yaml, checked on the built product (fixture ids in comments)."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from tests.conftest import FIXTURES

EXPECTED_SCHEMA = {
    "order_id": pa.int64(),
    "customer_id": pa.int64(),
    "customer_email": pa.string(),
    "ordered_at": pa.timestamp("us", tz="UTC"),
    "status": pa.string(),
    "item_count": pa.int32(),
    "list_amount": pa.decimal128(10, 2),
    "order_amount": pa.decimal128(10, 2),
}


def _fixture_rows(name: str) -> list[dict[str, str]]:
    with Path(FIXTURES[name]).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_output_schema(orders_table):
    assert {field.name: field.type for field in orders_table.schema} == EXPECTED_SCHEMA
    assert orders_table.column_names == list(EXPECTED_SCHEMA)


# R1
def test_unpaid_order(orders):
    # 10002 has no payment at all; 10008 only a failed attempt; 10014 is placed, not yet paid.
    for order_id in (10002, 10008, 10014):
        assert orders[order_id]["order_amount"] == Decimal("0.00")
        assert orders[order_id]["list_amount"] > 0


# R2
def test_one_row_per_order(orders_table):
    order_ids = orders_table.column("order_id").to_pylist()
    assert len(order_ids) == len(set(order_ids))
    assert set(order_ids) == {int(row["order_id"]) for row in _fixture_rows("raw_orders")}


# R2
def test_item_count_sums_quantities(orders):
    quantities: dict[int, int] = defaultdict(int)
    for row in _fixture_rows("raw_orders"):
        quantities[int(row["order_id"])] += int(row["quantity"])
    assert {order_id: row["item_count"] for order_id, row in orders.items()} == quantities
    assert orders[10003]["item_count"] == 7  # three lines: 1 + 4 + 2 items


# R3
def test_order_amount_is_money(orders):
    # 10001: 2 x 12.50 + 1 x 6.95 captured in one payment.
    assert orders[10001]["order_amount"] == Decimal("31.95")
    assert orders[10001]["order_amount"].as_tuple().exponent == -2


# R3
def test_partially_refunded_order(orders):
    # 10006: 76.50 captured, one bag of beans (11.25) refunded.
    assert orders[10006]["order_amount"] == Decimal("65.25")
    assert orders[10006]["list_amount"] == Decimal("76.50")


# R3
def test_failed_payments_ignored(orders):
    # 10007: a failed card attempt, then a successful one for the same 17.90.
    assert orders[10007]["order_amount"] == Decimal("17.90")


# R4
def test_cancelled_order_refunded(orders):
    # 10004: captured, cancelled, refunded.
    assert orders[10004]["status"] == "cancelled"
    assert orders[10004]["order_amount"] == Decimal("0.00")


# R4
def test_cancelled_order_awaiting_refund(orders):
    # 10011: cancelled but the refund has not reached the payments feed yet (amendment A3).
    assert orders[10011]["status"] == "cancelled"
    assert orders[10011]["order_amount"] == Decimal("0.00")


# R5
def test_ordered_at_is_utc(orders):
    # 10004 was placed at 07:30:12 in +08:00, i.e. the previous day in UTC.
    ordered_at = orders[10004]["ordered_at"]
    assert ordered_at.utcoffset() == timedelta(0)
    assert ordered_at.isoformat().startswith("2025-03-01T23:30:12")


# R6
def test_list_amount_is_goods_value(orders):
    cents: dict[int, int] = defaultdict(int)
    for row in _fixture_rows("raw_orders"):
        cents[int(row["order_id"])] += int(row["quantity"]) * int(Decimal(row["unit_price"]) * 100)
    assert {order_id: int(row["list_amount"] * 100) for order_id, row in orders.items()} == cents


# R7
def test_customer_email_normalised(orders):
    # 10003's export padded and capitalised the address; 10013 is the same customer.
    assert orders[10003]["customer_email"] == "maria.lopez@example.com"
    assert orders[10013]["customer_email"] == orders[10003]["customer_email"]


def test_status_values_are_known(orders):
    assert {row["status"] for row in orders.values()} <= {
        "placed",
        "shipped",
        "delivered",
        "cancelled",
    }
