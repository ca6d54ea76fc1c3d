"""An independent re-computation of the outputs from the fixtures, in plain Python.

The SQL models and this code are written differently on purpose: agreeing on every row is
strong evidence that both read the requirements the same way.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from tests.conftest import FIXTURES


def _rows(name: str) -> list[dict[str, str]]:
    with Path(FIXTURES[name]).open(newline="") as handle:
        return list(csv.DictReader(handle))


def customers() -> dict[int, dict[str, str]]:
    return {int(row["customer_id"]): row for row in _rows("customers")}


def qa_account_ids() -> set[int]:
    return {cid for cid, row in customers().items() if row["is_test_account"] == "true"}


def completed_orders() -> list[dict]:
    """Completed orders of non-test customers, with their UTC time and day."""
    excluded = qa_account_ids()
    result = []
    for row in _rows("orders"):
        customer_id = int(row["customer_id"])
        if row["status"] != "completed" or customer_id in excluded:
            continue
        at = datetime.fromisoformat(row["ordered_at"]).astimezone(timezone.utc)
        result.append(
            {
                "order_id": int(row["order_id"]),
                "customer_id": customer_id,
                "at": at,
                "day": at.date().isoformat(),
                "amount": Decimal(row["amount"]),
            }
        )
    return result


def expected_daily_revenue() -> dict[tuple[str, str], dict]:
    known = customers()
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for order in completed_orders():
        country = (
            known[order["customer_id"]]["country"] if order["customer_id"] in known else "unknown"
        )
        groups[(order["day"], country)].append(order)
    return {
        key: {
            "order_count": len(orders),
            "customer_count": len({o["customer_id"] for o in orders}),
            "revenue": sum((o["amount"] for o in orders), Decimal("0.00")),
        }
        for key, orders in groups.items()
    }
