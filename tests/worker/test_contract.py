"""Contract compatibility: output schemas read with DuckDB, against the spec and the baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from specfleet.core.spec.model import Column, Output, Spec
from specfleet.worker.verify.contract import (
    check_against_baseline,
    check_against_spec,
    contract_ok,
    type_change_level,
    unexpected_output_differences,
)
from specfleet.worker.verify.contract_data import null_and_enum_violations
from specfleet.worker.verify.model import ContractDifference, OutputSchema
from specfleet.worker.verify.schemas import logical_type, read_output_schema, unexpected_outputs

ORDERS_COLUMNS: list[dict[str, Any]] = [
    {"name": "order_id", "type": "bigint", "required": True},
    {"name": "ordered_at", "type": "timestamp_tz", "required": True},
    {"name": "status", "type": "string", "required": True, "enum": ["placed", "cancelled"]},
    {"name": "item_count", "type": "integer", "required": True},
    {"name": "order_amount", "type": "decimal(10,2)", "required": True, "tolerance": 0.005},
]
ORDERS_SQL = """
    SELECT CAST(id AS BIGINT) AS order_id,
           TIMESTAMPTZ '2026-01-05 08:00:00+00' + to_hours(id) AS ordered_at,
           CASE WHEN id % 2 = 0 THEN 'placed' ELSE 'cancelled' END AS status,
           CAST(id AS INTEGER) AS item_count,
           CAST(id * 1.25 AS DECIMAL(10,2)) AS order_amount
    FROM range(1, 6) AS r(id)
"""


def orders_output(**changes: Any) -> Output:
    document: dict[str, Any] = {
        "name": "orders",
        "format": "parquet",
        "path": "orders.parquet",
        "primary_key": ["order_id"],
        "columns": ORDERS_COLUMNS,
    }
    return Output.model_validate({**document, **changes})


def with_column(output: Output, name: str, **changes: Any) -> Output:
    """The output with one column's spec changed."""
    columns = [
        Column.model_validate({**column.model_dump(), **changes}) if column.name == name else column
        for column in output.columns
    ]
    return output.model_copy(update={"columns": columns})


def write_parquet(
    directory: Path, sql: str = "SELECT * FROM orders", name: str = "orders.parquet"
) -> Path:
    """Write ``sql``'s rows as parquet; the SQL may read the table ``orders`` (ORDERS_SQL)."""
    directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as connection:
        connection.execute(f"CREATE TABLE orders AS {ORDERS_SQL}")
        connection.execute(f"COPY ({sql}) TO '{directory / name}' (FORMAT PARQUET)")
    return directory


def write_csv(directory: Path, text: str, name: str = "out.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


def write_duckdb(directory: Path, *statements: str, name: str = "summary.duckdb") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(directory / name)) as connection:
        for statement in statements:
            connection.execute(statement)
    return directory


def schema_of(directory: Path, output: Output) -> OutputSchema:
    schema = read_output_schema(directory, output)
    assert schema is not None
    return schema


def kinds(differences: list[ContractDifference]) -> list[tuple[str, str, str | None]]:
    return [(d.kind, d.level, d.column) for d in differences]


SUMMARY_DDL = """
CREATE TABLE customer_summary (
    customer_id BIGINT PRIMARY KEY,
    segment VARCHAR NOT NULL,
    note VARCHAR,
    lifetime_revenue DECIMAL(12, 2) NOT NULL
)
"""
SUMMARY_ROWS = "INSERT INTO customer_summary VALUES (1, 'consumer', NULL, 10.50), (2, 'business', 'vip', 99.00)"


def summary_output(**changes: Any) -> Output:
    document: dict[str, Any] = {
        "name": "customer_summary",
        "format": "duckdb",
        "path": "summary.duckdb",
        "table": "customer_summary",
        "primary_key": ["customer_id"],
        "columns": [
            {"name": "customer_id", "type": "bigint", "required": True},
            {"name": "segment", "type": "string", "required": True},
            {"name": "note", "type": "string"},
            {"name": "lifetime_revenue", "type": "decimal(12,2)", "required": True},
        ],
    }
    return Output.model_validate({**document, **changes})


# --- reading schemas ---------------------------------------------------------------------------


def test_orders_shaped_parquet_maps_to_spec_types(tmp_path: Path) -> None:
    """decimal128(10,2) and TIMESTAMP WITH TIME ZONE read as decimal(10,2) and timestamp_tz."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    types = {column.name: column.type for column in schema.columns}
    assert types == {
        "order_id": "bigint",
        "ordered_at": "timestamp_tz",
        "status": "string",
        "item_count": "integer",
        "order_amount": "decimal(10,2)",
    }
    assert schema.rows == 5
    assert check_against_spec(orders_output(), schema) == []


@pytest.mark.parametrize(
    ("physical", "logical"),
    [
        ("BIGINT", "bigint"),
        ("INTEGER", "integer"),
        ("SMALLINT", "integer"),
        ("TINYINT", "integer"),
        ("DOUBLE", "double"),
        ("FLOAT", "double"),
        ("DECIMAL(38,10)", "decimal(38,10)"),
        ("VARCHAR", "string"),
        ("BOOLEAN", "boolean"),
        ("DATE", "date"),
        ("TIMESTAMP", "timestamp"),
        ("TIMESTAMP_NS", "timestamp"),
        ("TIMESTAMP WITH TIME ZONE", "timestamp_tz"),
        ("JSON", "json"),
        ("ENUM('a', 'b')", "string"),
        ("BLOB", "blob"),
        ("INTEGER[]", "integer[]"),
    ],
)
def test_physical_types_map_to_logical_types(physical: str, logical: str) -> None:
    """Each DuckDB type maps to the spec's logical type; unknown ones keep their lowercased name."""
    assert logical_type(physical) == logical


def test_duckdb_table_schema_has_not_null_and_primary_key(tmp_path: Path) -> None:
    """A DuckDB output's table reports NOT NULL columns, its declared key and its row count."""
    directory = write_duckdb(tmp_path, SUMMARY_DDL, SUMMARY_ROWS)
    schema = schema_of(directory, summary_output())
    assert [(c.name, c.type, c.nullable) for c in schema.columns] == [
        ("customer_id", "bigint", False),
        ("segment", "string", False),
        ("note", "string", True),
        ("lifetime_revenue", "decimal(12,2)", False),
    ]
    assert schema.primary_key == ("customer_id",)
    assert schema.rows == 2
    assert check_against_spec(summary_output(), schema) == []


def test_duckdb_view_is_not_read(tmp_path: Path) -> None:
    """A view named like the output's table is never evaluated: the output reads as unreadable."""
    directory = write_duckdb(
        tmp_path,
        "CREATE TABLE hidden AS SELECT 1 AS customer_id",
        "CREATE VIEW customer_summary AS SELECT * FROM hidden",
    )
    schema = schema_of(directory, summary_output())
    assert schema.columns == ()
    assert schema.problem is not None and "views are not read" in schema.problem
    assert kinds(check_against_spec(summary_output(), schema)) == [
        ("output-unreadable", "error", None)
    ]


def test_corrupt_file_is_a_value_not_an_exception(tmp_path: Path) -> None:
    """A file that is not parquet yields a schema with a problem, reported as an error."""
    (tmp_path / "orders.parquet").write_bytes(b"not a parquet file at all")
    schema = schema_of(tmp_path, orders_output())
    assert schema.problem is not None
    assert kinds(check_against_spec(orders_output(), schema)) == [
        ("output-unreadable", "error", None)
    ]


def test_output_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    """An output path that is a symlink leaving the outputs directory is not followed."""
    outside = write_parquet(tmp_path / "elsewhere")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "orders.parquet").symlink_to(outside / "orders.parquet")
    schema = schema_of(outputs, orders_output())
    assert schema.problem is not None and "outside" in schema.problem


def test_unexpected_outputs_lists_files_the_spec_does_not_name(tmp_path: Path) -> None:
    """Stray files are listed by relative path; declared outputs and a DuckDB WAL are not."""
    spec = Spec.model_validate(
        {
            "spec_version": 1,
            "id": "shop",
            "name": "Shop",
            "owners": ["owner@example.com"],
            "purpose": "Test outputs.",
            "implementation": {"runtime": "python3.11", "dependencies": "r.txt", "build": "b"},
            "outputs": [
                orders_output().model_dump(),
                summary_output(path="db/summary.duckdb").model_dump(),
            ],
        }
    )
    write_parquet(tmp_path)
    write_duckdb(tmp_path / "db", SUMMARY_DDL)
    (tmp_path / "db" / "summary.duckdb.wal").write_bytes(b"")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "orders.parquet.partial").write_bytes(b"")
    (tmp_path / "debug.csv").write_text("x\n")
    found = unexpected_outputs(tmp_path, spec)
    assert found == ["debug.csv", "tmp/orders.parquet.partial"]
    assert [d.kind for d in unexpected_output_differences(spec, found)] == [
        "output-unexpected",
        "output-unexpected",
    ]


# --- against the spec --------------------------------------------------------------------------


def test_missing_output_is_an_error() -> None:
    """No file where the spec says an output is written: output-missing, an error."""
    differences = check_against_spec(orders_output(), None)
    assert kinds(differences) == [("output-missing", "error", None)]
    assert not contract_ok(differences)


def test_spec_column_missing_and_extra_column(tmp_path: Path) -> None:
    """A spec column absent from the file is an error; a column the spec lacks is a warning."""
    sql = "SELECT * EXCLUDE (item_count), 'x' AS debug FROM orders"
    differences = check_against_spec(
        orders_output(), schema_of(write_parquet(tmp_path, sql), orders_output())
    )
    assert kinds(differences) == [
        ("column-missing", "error", "item_count"),
        ("column-unexpected", "warning", "debug"),
    ]


def test_parquet_types_are_strict_against_the_spec(tmp_path: Path) -> None:
    """In parquet, a bigint where the spec says integer is a type mismatch."""
    sql = "SELECT * REPLACE (CAST(item_count AS BIGINT) AS item_count) FROM orders"
    differences = check_against_spec(
        orders_output(), schema_of(write_parquet(tmp_path, sql), orders_output())
    )
    assert kinds(differences) == [("type-mismatch", "error", "item_count")]
    assert differences[0].baseline == "integer" and differences[0].candidate == "bigint"


CSV_OUTPUT = Output.model_validate(
    {
        "name": "footfall",
        "format": "csv",
        "path": "out.csv",
        "primary_key": ["store_id", "day"],
        "columns": [
            {"name": "store_id", "type": "string", "required": True},
            {"name": "day", "type": "date", "required": True},
            {"name": "visitors", "type": "integer", "required": True},
            {"name": "avg", "type": "decimal(10,2)"},
            {"name": "peak", "type": "timestamp_tz"},
            {"name": "ratio", "type": "double"},
            {"name": "closed_at", "type": "timestamp_tz"},
        ],
    }
)


def test_csv_types_compare_loosely(tmp_path: Path) -> None:
    """CSV: integer reads as bigint, whole numbers fit double, an empty column fits any type."""
    text = (
        "store_id,day,visitors,avg,peak,ratio,closed_at\n"
        "001,2026-01-05,120,10.50,2026-01-05T09:00:00Z,2,\n"
        "002,2026-01-05,80,6.25,2026-01-05T10:00:00Z,3,\n"
    )
    schema = schema_of(write_csv(tmp_path, text), CSV_OUTPUT)
    assert {c.name: c.type for c in schema.columns}["visitors"] == "bigint"
    differences = check_against_spec(CSV_OUTPUT, schema)
    # decimal(10,2) read as double: the scale cannot be checked in text, so only a warning.
    assert kinds(differences) == [("type-mismatch", "warning", "avg")]
    assert contract_ok(differences)


def test_csv_text_in_a_number_column_is_an_error(tmp_path: Path) -> None:
    """CSV looseness stops at values of the wrong kind: text where the spec says integer."""
    text = "store_id,day,visitors,avg,peak,ratio,closed_at\nA,2026-01-05,many,1.5,2026-01-05T09:00:00Z,1.5,\n"
    differences = check_against_spec(CSV_OUTPUT, schema_of(write_csv(tmp_path, text), CSV_OUTPUT))
    errors = [d for d in differences if d.level == "error"]
    assert kinds(errors) == [("type-mismatch", "error", "visitors")]


def test_csv_time_without_offset_is_an_error(tmp_path: Path) -> None:
    """CSV: times without a UTC offset where the spec says timestamp_tz are a type mismatch."""
    text = "store_id,day,visitors,avg,peak,ratio,closed_at\nA,2026-01-05,1,1.5,2026-01-05 09:00:00,1.5,\n"
    differences = check_against_spec(CSV_OUTPUT, schema_of(write_csv(tmp_path, text), CSV_OUTPUT))
    errors = [d for d in differences if d.level == "error"]
    assert kinds(errors) == [("type-mismatch", "error", "peak")]


def test_required_column_with_nulls_is_an_error(tmp_path: Path) -> None:
    """A required column holding nulls is an error naming the column and the count."""
    sql = (
        "SELECT * REPLACE (CASE WHEN order_id = 3 THEN NULL ELSE status END AS status) FROM orders"
    )
    differences = null_and_enum_violations(write_parquet(tmp_path, sql), orders_output())
    assert kinds(differences) == [("required-has-nulls", "error", "status")]
    assert differences[0].candidate == "1"


def test_enum_violation_is_an_error(tmp_path: Path) -> None:
    """A value outside the column's enum is an error that shows the offending value."""
    sql = "SELECT * REPLACE (CASE WHEN order_id = 3 THEN 'Shipped' ELSE status END AS status) FROM orders"
    differences = null_and_enum_violations(write_parquet(tmp_path, sql), orders_output())
    assert kinds(differences) == [("enum-violated", "error", "status")]
    assert "'Shipped'" in differences[0].message


def test_duplicate_primary_key_is_an_error(tmp_path: Path) -> None:
    """Two rows with one primary key value: primary-key-not-unique, naming the key."""
    sql = "SELECT * FROM orders UNION ALL SELECT * FROM orders WHERE order_id = 4"
    differences = null_and_enum_violations(write_parquet(tmp_path, sql), orders_output())
    assert kinds(differences) == [("primary-key-not-unique", "error", None)]
    assert "order_id=4" in differences[0].message


def test_clean_output_has_no_data_violations(tmp_path: Path) -> None:
    """Output that honours required, enum and key has no violation (and so can fail above)."""
    assert null_and_enum_violations(write_parquet(tmp_path), orders_output()) == []


def test_integer_enum_and_csv_output(tmp_path: Path) -> None:
    """Integer enums are compared as text, so a csv integer column checks against them."""
    output = Output.model_validate(
        {
            "name": "out",
            "format": "csv",
            "path": "out.csv",
            "columns": [{"name": "level", "type": "integer", "enum": [1, 2]}],
        }
    )
    differences = null_and_enum_violations(write_csv(tmp_path, "level\n1\n2\n3\n\n"), output)
    assert kinds(differences) == [("enum-violated", "error", "level")]
    assert "1 row(s)" in differences[0].message


# --- against the baseline ----------------------------------------------------------------------


def test_unchanged_output_has_no_differences(tmp_path: Path) -> None:
    """The same output written twice: nothing to report against the spec or the baseline."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    candidate = schema_of(write_parquet(tmp_path / "c"), orders_output())
    assert check_against_baseline(orders_output(), baseline, candidate) == []


def test_dropped_column_is_column_removed(tmp_path: Path) -> None:
    """A column the baseline wrote and the candidate does not: column-removed, naming it."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    sql = "SELECT * EXCLUDE (item_count) FROM orders"
    candidate = schema_of(write_parquet(tmp_path / "c", sql), orders_output())
    differences = check_against_baseline(orders_output(), baseline, candidate)
    assert kinds(differences) == [("column-removed", "error", "item_count")]
    assert "item_count" in differences[0].message
    assert not contract_ok(differences)


def test_decimal_to_double_is_a_breaking_type_change(tmp_path: Path) -> None:
    """Money retyped from decimal(10,2) to double loses exactness: an error."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    sql = "SELECT * REPLACE (CAST(order_amount AS DOUBLE) AS order_amount) FROM orders"
    candidate = schema_of(write_parquet(tmp_path / "c", sql), orders_output())
    differences = check_against_baseline(orders_output(), baseline, candidate)
    assert kinds(differences) == [("type-changed", "error", "order_amount")]
    assert (differences[0].baseline, differences[0].candidate) == ("decimal(10,2)", "double")


def test_integer_to_bigint_is_a_widening_warning(tmp_path: Path) -> None:
    """integer to bigint loses no value: a warning, and the contract still holds."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    sql = "SELECT * REPLACE (CAST(item_count AS BIGINT) AS item_count) FROM orders"
    candidate = schema_of(write_parquet(tmp_path / "c", sql), orders_output())
    differences = check_against_baseline(orders_output(), baseline, candidate)
    assert kinds(differences) == [("type-changed", "warning", "item_count")]
    assert contract_ok(differences)


@pytest.mark.parametrize(
    ("baseline", "candidate", "level"),
    [
        ("integer", "integer", None),
        ("integer", "bigint", "warning"),
        ("integer", "double", "warning"),
        ("bigint", "integer", "error"),
        ("bigint", "double", "error"),
        ("double", "bigint", "error"),
        ("decimal(10,2)", "decimal(12,2)", "warning"),
        ("decimal(10,2)", "decimal(12,4)", "warning"),
        ("decimal(10,2)", "decimal(10,3)", "error"),
        ("decimal(12,2)", "decimal(10,2)", "error"),
        ("decimal(10,2)", "decimal(10,1)", "error"),
        ("decimal(10,2)", "double", "error"),
        ("double", "decimal(38,10)", "error"),
        ("integer", "decimal(12,2)", "warning"),
        ("integer", "decimal(11,2)", "error"),
        ("bigint", "decimal(21,2)", "warning"),
        ("bigint", "decimal(20,2)", "error"),
        ("timestamp", "timestamp_tz", "error"),
        ("date", "timestamp", "error"),
        ("string", "json", "error"),
    ],
)
def test_type_widening_table(baseline: str, candidate: str, level: str | None) -> None:
    """Widenings that keep every value are warnings; every other type change is an error."""
    assert type_change_level(baseline, candidate) == level


def test_added_column_is_info(tmp_path: Path) -> None:
    """A new column breaks no consumer: info, and the contract holds."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    sql = "SELECT *, 'web' AS channel FROM orders"
    candidate = schema_of(write_parquet(tmp_path / "c", sql), orders_output())
    differences = check_against_baseline(orders_output(), baseline, candidate)
    assert kinds(differences) == [("column-added", "info", "channel")]
    assert contract_ok(differences)


def test_nullable_to_required_in_the_spec_is_an_error(tmp_path: Path) -> None:
    """A column the baseline's spec allowed to be null becoming required: nullability tightened."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    before = with_column(orders_output(), "item_count", required=False)
    differences = check_against_baseline(orders_output(), schema, schema, before)
    assert kinds(differences) == [("nullability-tightened", "error", "item_count")]


def test_not_null_added_to_a_duckdb_table_is_an_error(tmp_path: Path) -> None:
    """A DuckDB table declaring NOT NULL on a column the spec lets be null: tightened."""
    baseline = schema_of(write_duckdb(tmp_path / "b", SUMMARY_DDL, SUMMARY_ROWS), summary_output())
    ddl = SUMMARY_DDL.replace("note VARCHAR,", "note VARCHAR NOT NULL,")
    rows = SUMMARY_ROWS.replace("NULL", "''")
    candidate = schema_of(write_duckdb(tmp_path / "c", ddl, rows), summary_output())
    differences = check_against_baseline(summary_output(), baseline, candidate)
    assert kinds(differences) == [("nullability-tightened", "error", "note")]


def test_parquet_required_flag_is_not_a_contract_change(tmp_path: Path) -> None:
    """Parquet writers set REQUIRED by library, not by intent: no difference from it alone."""
    baseline = schema_of(write_parquet(tmp_path / "b"), orders_output())
    sql = (
        "SELECT * REPLACE (CASE WHEN order_id > 99 THEN NULL ELSE status END AS status) FROM orders"
    )
    candidate = schema_of(write_parquet(tmp_path / "c", sql), orders_output())
    before = {c.name: c.nullable for c in baseline.columns}["status"]
    after = {c.name: c.nullable for c in candidate.columns}["status"]
    assert (before, after) == (False, True)  # the premise: the files do differ
    assert check_against_baseline(orders_output(), baseline, candidate) == []


def test_enum_value_removed_is_an_error(tmp_path: Path) -> None:
    """An enum value the baseline's spec allowed and the candidate's does not: an error."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    before = with_column(orders_output(), "status", enum=["placed", "shipped", "cancelled"])
    differences = check_against_baseline(orders_output(), schema, schema, before)
    assert kinds(differences) == [("enum-value-removed", "error", "status")]
    assert "shipped" in differences[0].message


def test_enum_value_added_is_a_warning(tmp_path: Path) -> None:
    """A new enum value is a warning (exhaustive consumers may not handle it), not breaking."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    after = with_column(orders_output(), "status", enum=["placed", "cancelled", "returned"])
    differences = check_against_baseline(after, schema, schema, orders_output())
    assert kinds(differences) == [("enum-value-added", "warning", "status")]
    assert contract_ok(differences)


def test_primary_key_changed_in_the_spec_is_an_error(tmp_path: Path) -> None:
    """A different primary key in the candidate's spec changes row identity: an error."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    after = orders_output(primary_key=["order_id", "status"])
    differences = check_against_baseline(after, schema, schema, orders_output())
    assert kinds(differences) == [("primary-key-changed", "error", None)]


def test_primary_key_changed_in_a_duckdb_table_is_an_error(tmp_path: Path) -> None:
    """A DuckDB table declaring another primary key than the baseline's table: an error."""
    baseline = schema_of(write_duckdb(tmp_path / "b", SUMMARY_DDL, SUMMARY_ROWS), summary_output())
    ddl = SUMMARY_DDL.replace(
        "customer_id BIGINT PRIMARY KEY", "customer_id BIGINT NOT NULL"
    ).replace("segment VARCHAR NOT NULL,", "segment VARCHAR NOT NULL PRIMARY KEY,")
    candidate = schema_of(write_duckdb(tmp_path / "c", ddl, SUMMARY_ROWS), summary_output())
    differences = check_against_baseline(summary_output(), baseline, candidate)
    assert ("primary-key-changed", "error", None) in kinds(differences)
    assert kinds(check_against_spec(summary_output(), candidate)) == [
        ("primary-key-mismatch", "warning", None)
    ]


def test_output_removed_is_an_error(tmp_path: Path) -> None:
    """The baseline wrote the output and the candidate did not: output-removed, an error."""
    baseline = schema_of(write_parquet(tmp_path), orders_output())
    differences = check_against_baseline(orders_output(), baseline, None)
    assert kinds(differences) == [("output-removed", "error", None)]
    assert read_output_schema(tmp_path / "nothing", orders_output()) is None


def test_csv_inferred_types_do_not_break_against_the_baseline(tmp_path: Path) -> None:
    """CSV: types inferred from text differ harmlessly (bigint/integer, empty columns)."""
    header = "store_id,day,visitors,avg,peak,ratio,closed_at\n"
    baseline = schema_of(
        write_csv(tmp_path / "b", header + "A,2026-01-05,1,1.5,2026-01-05T09:00:00Z,1.5,\n"),
        CSV_OUTPUT,
    )
    candidate = schema_of(
        write_csv(
            tmp_path / "c",
            header + "A,2026-01-05,1,1.5,2026-01-05T09:00:00Z,2,2026-01-05T21:00:00Z\n",
        ),
        CSV_OUTPUT,
    )
    differences = check_against_baseline(CSV_OUTPUT, baseline, candidate)
    # ratio: 1.5 then 2, read as double then bigint: numbers both, only a warning.
    assert kinds(differences) == [("type-changed", "warning", "ratio")]
    assert contract_ok(differences)


def test_spec_only_changes_between_baseline_and_candidate(tmp_path: Path) -> None:
    """Loosened nullability is an error, a new enum removes values, a dropped enum warns."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    loosened = with_column(orders_output(), "item_count", required=False)
    assert kinds(check_against_baseline(loosened, schema, schema, orders_output())) == [
        ("nullability-loosened", "error", "item_count")
    ]
    no_enum = with_column(orders_output(), "status", enum=None)
    assert kinds(check_against_baseline(orders_output(), schema, schema, no_enum)) == [
        ("enum-value-removed", "error", "status")
    ]
    assert kinds(check_against_baseline(no_enum, schema, schema, orders_output())) == [
        ("enum-value-added", "warning", "status")
    ]


def test_moved_output_is_an_error_and_a_new_one_is_info(tmp_path: Path) -> None:
    """Another path for the same output breaks readers; an output the baseline lacked does not."""
    schema = schema_of(write_parquet(tmp_path), orders_output())
    moved = orders_output(path="v2/orders.parquet")
    assert kinds(check_against_baseline(moved, schema, schema, orders_output())) == [
        ("location-changed", "error", None)
    ]
    added = check_against_baseline(orders_output(), None, schema)
    assert kinds(added) == [("output-added", "info", None)]
    assert contract_ok(added)
