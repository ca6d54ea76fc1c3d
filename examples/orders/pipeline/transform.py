"""Turn order lines and payments into one row per order.

Money is handled as integer cents from parsing to output: pandas' float sums drift by fractions
of a cent, and invoices are issued from ``order_amount`` (amendment A2), so it has to be exact.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import pandas as pd

from pipeline.errors import InputProblem

ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled")
PAYMENT_STATUSES = ("captured", "refunded", "failed")

# decimal(10,2) holds at most 99,999,999.99.
MAX_CENTS = 10**10 - 1

OUTPUT_COLUMNS = (
    "order_id",
    "customer_id",
    "customer_email",
    "ordered_at",
    "status",
    "item_count",
    "list_amount",
    "order_amount",
)


def parse_cents(text: str, *, where: str) -> int:
    """``"12.50"`` -> ``1250``; refuses sub-cent amounts rather than rounding them away."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputProblem(f"{where}: {text!r} is not an amount") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise InputProblem(f"{where}: {text!r} is not an amount in whole cents")
    if value < 0:
        raise InputProblem(f"{where}: {text!r} is negative")
    return int(value * 100)


def parse_int(text: str, *, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputProblem(f"{where}: {text!r} is not an integer") from None


def parse_utc(text: str, *, where: str) -> datetime:
    """Parse an ISO 8601 time with an offset and convert it to UTC.

    The regional exports stamp local time with their own offset (+01:00, -05:00, +08:00, Z);
    a time without an offset is ambiguous by hours, so it is refused rather than guessed.
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputProblem(f"{where}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InputProblem(f"{where}: {text!r} has no UTC offset")
    return value.astimezone(timezone.utc)


def cents_to_decimal(cents: int) -> Decimal:
    """``1250`` -> ``Decimal("12.50")``, always with two places (pyarrow checks the scale)."""
    return Decimal(cents).scaleb(-2)


def _parsed(frame: pd.DataFrame, column: str, parse, input_name: str) -> list:
    # CSV line numbers (header is line 1) make errors findable in the export.
    return [
        parse(text, where=f"{input_name} line {index + 2}, {column}")
        for index, text in zip(frame.index, frame[column], strict=True)
    ]


def prepare_lines(raw_orders: pd.DataFrame) -> pd.DataFrame:
    """Typed, validated order lines."""
    lines = pd.DataFrame(index=raw_orders.index)
    for column in ("order_id", "line_no", "customer_id", "quantity"):
        lines[column] = pd.Series(
            _parsed(raw_orders, column, parse_int, "raw_orders"),
            index=raw_orders.index,
            dtype="int64",
        )
    lines["unit_cents"] = pd.Series(
        _parsed(raw_orders, "unit_price", parse_cents, "raw_orders"),
        index=raw_orders.index,
        dtype="int64",
    )
    # Mixed-case e-mails created duplicate customers in CRM joins; e-mail is case-insensitive.
    lines["customer_email"] = raw_orders["customer_email"].str.lower()
    lines["ordered_at"] = pd.to_datetime(
        _parsed(raw_orders, "ordered_at", parse_utc, "raw_orders"), utc=True
    )
    lines["status"] = raw_orders["status"].str.lower()

    unknown = sorted(set(lines["status"]) - set(ORDER_STATUSES))
    if unknown:
        raise InputProblem(
            f"raw_orders: unknown status value(s) {unknown}; expected one of {list(ORDER_STATUSES)}"
        )
    if (lines["quantity"] <= 0).any():
        bad = lines.loc[lines["quantity"] <= 0, "order_id"].tolist()
        raise InputProblem(f"raw_orders: quantity must be positive (orders {bad})")
    if (lines["customer_email"] == "").any():
        bad = lines.loc[lines["customer_email"] == "", "order_id"].tolist()
        raise InputProblem(f"raw_orders: customer_email is blank (orders {bad})")
    duplicated = lines.duplicated(["order_id", "line_no"])
    if duplicated.any():
        bad = sorted(set(lines.loc[duplicated, "order_id"]))
        raise InputProblem(f"raw_orders: order line repeated (orders {bad})")

    lines["line_cents"] = lines["quantity"] * lines["unit_cents"]
    return lines


def net_paid_cents(payments: pd.DataFrame) -> pd.Series:
    """Captured minus refunded cents per order_id; failed attempts move no money."""
    order_ids = _parsed(payments, "order_id", parse_int, "payments")
    cents = _parsed(payments, "amount", parse_cents, "payments")
    statuses = payments["status"].str.lower().tolist()
    unknown = sorted(set(statuses) - set(PAYMENT_STATUSES))
    if unknown:
        raise InputProblem(
            f"payments: unknown status value(s) {unknown}; expected one of {list(PAYMENT_STATUSES)}"
        )
    sign = {"captured": 1, "refunded": -1, "failed": 0}
    signed = pd.DataFrame(
        {
            "order_id": pd.Series(order_ids, dtype="int64"),
            "cents": pd.Series(
                [c * sign[s] for c, s in zip(cents, statuses, strict=True)], dtype="int64"
            ),
        }
    )
    return signed.groupby("order_id")["cents"].sum()


def build_orders(raw_orders: pd.DataFrame, payments: pd.DataFrame) -> pd.DataFrame:
    """One row per order, columns in :data:`OUTPUT_COLUMNS` order, sorted by order_id."""
    lines = prepare_lines(raw_orders)

    # The export repeats the order's header fields on every line; they must agree, or we
    # would silently pick one customer or status for the whole order.
    header_columns = ["customer_id", "customer_email", "ordered_at", "status"]
    disagreeing = lines.groupby("order_id")[header_columns].nunique() > 1
    if disagreeing.to_numpy().any():
        bad = disagreeing.index[disagreeing.any(axis=1)].tolist()
        raise InputProblem(
            f"raw_orders: lines of the same order disagree on its header (orders {bad})"
        )

    grouped = lines.groupby("order_id", sort=True)
    orders = grouped[header_columns].first()
    orders["item_count"] = grouped["quantity"].sum().astype("int64")
    orders["list_cents"] = grouped["line_cents"].sum().astype("int64")

    paid = net_paid_cents(payments)
    # Payments for orders placed after the raw_orders snapshot are normal; they are picked
    # up by the next build, when their order is in the snapshot.
    orders["paid_cents"] = paid.reindex(orders.index, fill_value=0).astype("int64")

    overrefunded = orders.index[orders["paid_cents"] < 0].tolist()
    if overrefunded:
        raise InputProblem(f"payments: refunds exceed captured amounts (orders {overrefunded})")
    # A cancelled order earns nothing, even while its refund is still on its way (A3).
    orders.loc[orders["status"] == "cancelled", "paid_cents"] = 0

    too_large = orders.index[
        (orders[["list_cents", "paid_cents"]] > MAX_CENTS).any(axis=1)
    ].tolist()
    if too_large:
        raise InputProblem(f"raw_orders: amounts exceed decimal(10,2) (orders {too_large})")

    orders["list_amount"] = [cents_to_decimal(int(c)) for c in orders["list_cents"]]
    orders["order_amount"] = [cents_to_decimal(int(c)) for c in orders["paid_cents"]]
    return orders.reset_index().loc[:, list(OUTPUT_COLUMNS)]


def orphan_payment_orders(raw_orders: pd.DataFrame, payments: pd.DataFrame) -> list[int]:
    """Order ids that have payments but no lines in raw_orders (reported, not fatal)."""
    known = set(_parsed(raw_orders, "order_id", parse_int, "raw_orders"))
    return sorted(set(_parsed(payments, "order_id", parse_int, "payments")) - known)
