"""Read the product's inputs from the ``{inputs}`` directory, refusing anything unusable.

Every input is read as text (``dtype=str``): the exports mix number formats and time zones, and
parsing them ourselves (in :mod:`pipeline.transform`) gives exact money and clear errors
instead of pandas' silent float and NaN guesses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.errors import (
    EXIT_INPUT_EMPTY,
    EXIT_INPUT_INVALID,
    EXIT_INPUT_MISSING,
    InputProblem,
)

RAW_ORDERS_COLUMNS = (
    "order_id",
    "line_no",
    "customer_id",
    "customer_email",
    "ordered_at",
    "sku",
    "quantity",
    "unit_price",
    "status",
)
PAYMENTS_COLUMNS = ("payment_id", "order_id", "amount", "status", "paid_at")


def read_csv_input(
    inputs_dir: Path, name: str, columns: tuple[str, ...], *, rows_required: bool
) -> pd.DataFrame:
    """Read ``{inputs}/<name>.csv`` as strings, with its columns checked.

    ``rows_required`` distinguishes inputs where "no rows" means a broken export (raw_orders:
    the shop never has a day without orders) from inputs where it is normal (payments).
    """
    path = inputs_dir / f"{name}.csv"
    if not path.is_file():
        raise InputProblem(f"input {name} is missing: expected {path}", EXIT_INPUT_MISSING)
    if path.stat().st_size == 0:
        raise InputProblem(f"input {name} is empty: {path} has 0 bytes", EXIT_INPUT_EMPTY)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:  # whitespace only: no header at all
        raise InputProblem(
            f"input {name} is empty: {path} has no header", EXIT_INPUT_EMPTY
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputProblem(f"input {name} is not valid CSV: {error}") from None

    frame.columns = [str(column).strip() for column in frame.columns]
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputProblem(
            f"input {name} lacks column(s) {', '.join(missing)} (has: {', '.join(frame.columns)})",
            EXIT_INPUT_INVALID,
        )
    if rows_required and frame.empty:
        raise InputProblem(
            f"input {name} is empty: {path} has a header but no rows", EXIT_INPUT_EMPTY
        )
    # Extra columns are ignored on purpose: the shop adds export columns without notice.
    frame = frame.loc[:, list(columns)].copy()
    for column in columns:
        # The regional exports pad some fields (" Maria.Lopez@Example.COM "); padding is noise.
        frame[column] = frame[column].str.strip()
    return frame
