"""Data compatibility: baseline and candidate outputs joined on the key and compared in DuckDB."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import duckdb

from specfleet.core.spec.model import Output
from specfleet.worker.verify.data import data_ok, diff_output
from specfleet.worker.verify.model import DataDiff

# The rows every test starts from; tests derive their outputs from the table ``orders``.
ORDERS_SQL = """
    SELECT CAST(id AS BIGINT) AS order_id,
           TIMESTAMPTZ '2026-01-05 08:00:00+00' + to_hours(id) AS ordered_at,
           CASE WHEN id % 2 = 0 THEN 'placed' ELSE 'cancelled' END AS status,
           CAST(id AS INTEGER) AS item_count,
           CAST(id * 1.25 AS DECIMAL(10,2)) AS order_amount,
           id / 3 AS ratio
    FROM range(1, 6) AS r(id)
"""
SAME = "SELECT * FROM orders"


def orders_output(**changes: Any) -> Output:
    document: dict[str, Any] = {
        "name": "orders",
        "format": "parquet",
        "path": "orders.parquet",
        "primary_key": ["order_id"],
        "columns": [
            {"name": "order_id", "type": "bigint", "required": True},
            {"name": "ordered_at", "type": "timestamp_tz", "required": True},
            {"name": "status", "type": "string", "required": True},
            {"name": "item_count", "type": "integer", "required": True, "tolerance": 0},
            {"name": "order_amount", "type": "decimal(10,2)", "tolerance": 0.005},
            {"name": "ratio", "type": "double", "tolerance": 0.01},
        ],
    }
    return Output.model_validate({**document, **changes})


def write(
    directory: Path,
    sql: str = SAME,
    target: str = "orders.parquet",
    options: str = "FORMAT PARQUET",
    source: Path | None = None,
) -> Path:
    """Write ``sql``'s rows to ``directory/target``.

    The SQL may read the table ``orders`` (ORDERS_SQL's rows) and, given ``source``, the table
    ``baseline`` holding that parquet file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(f"CREATE TABLE orders AS {ORDERS_SQL}")
        if source is not None:
            connection.execute("CREATE TABLE baseline AS FROM read_parquet(?)", [str(source)])
        connection.execute(f"COPY ({sql}) TO '{directory / target}' ({options})")
    return directory


def diff(tmp_path: Path, baseline_sql: str, candidate_sql: str, **kwargs: Any) -> DataDiff:
    output = kwargs.pop("output", orders_output())
    return diff_output(
        write(tmp_path / "baseline", baseline_sql),
        write(tmp_path / "candidate", candidate_sql),
        output,
        **kwargs,
    )


def test_identical_outputs(tmp_path: Path) -> None:
    """The same rows on both sides: identical, every shared column compared, data ok."""
    result = diff(tmp_path, SAME, SAME)
    assert result.identical
    assert (result.baseline_rows, result.candidate_rows) == (5, 5)
    assert result.key == ("order_id",)
    assert result.compared_columns == (
        "ordered_at",
        "status",
        "item_count",
        "order_amount",
        "ratio",
    )
    assert data_ok(result)


def test_value_changed_beyond_tolerance(tmp_path: Path) -> None:
    """A cent more on one order (tolerance half a cent): one changed row, shown with its key."""
    changed = "SELECT * REPLACE (CASE WHEN order_id = 2 THEN order_amount + 0.01 ELSE order_amount END AS order_amount) FROM orders"
    result = diff(tmp_path, SAME, changed)
    assert not result.identical
    assert result.changed_rows == 1
    assert result.changed_columns == {"order_amount": 1}
    [example] = result.examples
    assert example.key == (("order_id", "2"),)
    assert (example.column, example.baseline, example.candidate) == ("order_amount", "2.50", "2.51")
    assert not data_ok(result)
    assert data_ok(result, allowed_columns={"order_amount"})


def test_change_within_tolerance_is_identical(tmp_path: Path) -> None:
    """A double off by less than its tolerance is not a change."""
    nudged = "SELECT * REPLACE (ratio + 0.004 AS ratio) FROM orders"
    assert diff(tmp_path, SAME, nudged).identical


def test_exact_columns_compare_null_safely(tmp_path: Path) -> None:
    """A value turned NULL differs, in a tolerance column and in an exact one alike."""
    nulled = (
        "SELECT * REPLACE (CASE WHEN order_id = 1 THEN NULL ELSE status END AS status, "
        "CASE WHEN order_id = 3 THEN NULL ELSE ratio END AS ratio) FROM orders"
    )
    result = diff(tmp_path, SAME, nulled)
    assert result.changed_columns == {"status": 1, "ratio": 1}
    assert result.changed_rows == 2
    shown = {(e.column, e.key, e.candidate) for e in result.examples}
    assert shown == {
        ("status", (("order_id", "1"),), "NULL"),
        ("ratio", (("order_id", "3"),), "NULL"),
    }


def test_timestamps_render_in_utc(tmp_path: Path) -> None:
    """Changed timestamp_tz values are shown in UTC, whatever the machine's time zone."""
    later = "SELECT * REPLACE (CASE WHEN order_id = 1 THEN ordered_at + INTERVAL 1 MINUTE ELSE ordered_at END AS ordered_at) FROM orders"
    [example] = diff(tmp_path, SAME, later).examples
    assert (example.baseline, example.candidate) == (
        "2026-01-05 09:00:00+00",
        "2026-01-05 09:01:00+00",
    )


def test_rows_only_on_one_side(tmp_path: Path) -> None:
    """Rows missing from the candidate and new in it are counted, with their keys as examples."""
    candidate = "SELECT * FROM orders WHERE order_id NOT IN (2, 4) UNION ALL SELECT * REPLACE (order_id + 100 AS order_id) FROM orders WHERE order_id = 1"
    result = diff(tmp_path, SAME, candidate)
    assert (result.only_in_baseline, result.only_in_candidate, result.changed_rows) == (2, 1, 0)
    assert result.missing_keys == ((("order_id", "2"),), (("order_id", "4"),))
    assert result.extra_keys == ((("order_id", "101"),),)
    assert not data_ok(result, allowed_columns={"status", "order_amount"})


def test_examples_are_bounded_and_cover_each_column(tmp_path: Path) -> None:
    """Many changes yield at most max_examples examples, taken from every changed column."""
    changed = "SELECT * REPLACE (status || '!' AS status, item_count + 1 AS item_count) FROM orders"
    result = diff(tmp_path, SAME, changed, max_examples=2)
    assert result.changed_rows == 5
    assert result.changed_columns == {"status": 5, "item_count": 5}
    assert [e.column for e in result.examples] == ["status", "item_count"]


def test_no_primary_key_compares_multisets(tmp_path: Path) -> None:
    """Without a key, rows are matched as multisets: a duplicated row is one extra row."""
    candidate = "SELECT * FROM orders UNION ALL SELECT * FROM orders WHERE order_id = 5"
    result = diff(tmp_path, SAME, candidate, output=orders_output(primary_key=[]))
    assert (result.only_in_baseline, result.only_in_candidate) == (0, 1)
    assert "no primary key" in result.note and "multisets" in result.note
    assert result.key == ()
    assert dict(result.extra_keys[0])["order_id"] == "5"


def test_duplicate_keys_are_noted(tmp_path: Path) -> None:
    """A key repeated on one side still compares, and the note says counts are of pairs."""
    candidate = "SELECT * FROM orders UNION ALL SELECT * REPLACE ('x' AS status) FROM orders WHERE order_id = 3"
    result = diff(tmp_path, SAME, candidate)
    assert "not unique" in result.note and "candidate" in result.note
    assert result.changed_columns == {"status": 1}


def test_columns_on_one_side_are_not_compared(tmp_path: Path) -> None:
    """A column added or dropped is left to the contract layer: the data is still identical."""
    candidate = "SELECT * EXCLUDE (ratio), 'web' AS channel FROM orders"
    result = diff(tmp_path, SAME, candidate)
    assert result.identical
    assert "ratio" not in result.compared_columns and "channel" not in result.compared_columns


def test_missing_candidate_counts_every_baseline_row(tmp_path: Path) -> None:
    """No candidate output: every baseline row is only in the baseline, with a note."""
    baseline = write(tmp_path / "baseline")
    (tmp_path / "candidate").mkdir()
    result = diff_output(baseline, tmp_path / "candidate", orders_output(), max_examples=2)
    assert (result.only_in_baseline, result.only_in_candidate) == (5, 0)
    assert result.missing_keys == ((("order_id", "1"),), (("order_id", "2"),))
    assert "candidate output missing" in result.note


def test_csv_outputs_compare_numbers_as_numbers(tmp_path: Path) -> None:
    """CSV values read as different types on each side (2 and 2.0) still compare by value."""
    output = orders_output(format="csv", path="orders.csv")
    csv = "FORMAT CSV, HEADER"
    baseline = write(tmp_path / "b", "SELECT order_id, item_count FROM orders", "orders.csv", csv)
    candidate = write(
        tmp_path / "c",
        "SELECT order_id, CAST(item_count AS DOUBLE) + 0.5 - 0.5 AS item_count FROM orders",
        "orders.csv",
        csv,
    )
    assert (candidate / "orders.csv").read_text().splitlines()[1] == "1,1.0"
    result = diff_output(baseline, candidate, output)
    assert result.compared_columns == ("item_count",)
    assert result.identical


def test_duckdb_table_outputs(tmp_path: Path) -> None:
    """DuckDB outputs are diffed from their table, attached read-only."""
    output = orders_output(format="duckdb", path="orders.duckdb", table="orders")
    sides = {
        "b": "CREATE TABLE orders AS SELECT * FROM source",
        "c": "CREATE TABLE orders AS SELECT * REPLACE (upper(status) AS status) FROM source",
    }
    for side, statement in sides.items():
        (tmp_path / side).mkdir()
        with duckdb.connect(str(tmp_path / side / "orders.duckdb")) as connection:
            connection.execute(f"CREATE TABLE source AS {ORDERS_SQL}")
            connection.execute(statement)
    result = diff_output(tmp_path / "b", tmp_path / "c", output)
    assert result.changed_columns == {"status": 5}


def test_million_rows_diff_quickly_in_duckdb(tmp_path: Path) -> None:
    """A 1M-row diff runs in seconds and never holds the table in Python memory."""
    million = """
        SELECT range AS order_id, range % 7 AS item_count,
               CAST(range / 100 AS DECIMAL(12,2)) AS order_amount,
               'status-' || (range % 5) AS status
        FROM range(1000000)
    """
    changed = (
        "SELECT * REPLACE (CASE WHEN order_id IN (10, 500000) THEN order_amount + 1 "
        "ELSE order_amount END AS order_amount) FROM baseline WHERE order_id <> 999999"
    )
    output = orders_output(
        columns=[
            {"name": "order_id", "type": "bigint"},
            {"name": "item_count", "type": "bigint", "tolerance": 0},
            {"name": "order_amount", "type": "decimal(12,2)", "tolerance": 0.005},
            {"name": "status", "type": "string"},
        ]
    )
    baseline = write(tmp_path / "b", million)
    candidate = write(tmp_path / "c", changed, source=baseline / "orders.parquet")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = diff_output(baseline, candidate, output)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.baseline_rows, result.candidate_rows) == (1_000_000, 999_999)
    assert (result.only_in_baseline, result.changed_columns) == (1, {"order_amount": 2})
    assert elapsed < 5, f"1M-row diff took {elapsed:.1f} s"
    # A million rows in Python would take hundreds of MB; counts and examples take kilobytes.
    assert peak < 5_000_000, f"Python memory peaked at {peak / 1e6:.1f} MB"
