"""The contract rules checked against the data itself: nulls in required columns, values
outside an enum, repeated or null primary keys.

Every check runs inside DuckDB; only counts and a few offending values come back.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from specfleet.core.spec.model import Column, Output
from specfleet.worker.verify.model import ContractDifference
from specfleet.worker.verify.schemas import (
    OutputUnreadable,
    first_line,
    open_output,
    output_file,
    quote_identifier,
    quote_literal,
    reader,
)

_MAX_OFFENDING_VALUES = 5


def null_and_enum_violations(outputs_dir: Path, output: Output) -> list[ContractDifference]:
    """Nulls in required columns, values outside an enum, and repeated or null primary keys.

    Reads the data inside DuckDB; only counts and a few offending values come back. A missing
    or unreadable output has nothing to check here (the contract's ``check_against_spec``
    reports it), nor do spec columns the output lacks. A query that fails on a readable
    output is an error: a check that could not run must not read as a pass.
    """
    try:
        path = output_file(outputs_dir, output)
    except OutputUnreadable:
        return []
    if path is None:
        return []
    with reader(outputs_dir) as connection:
        try:
            source = open_output(connection, path, output, "product_output").sql
            present = {
                str(row[0])
                for row in connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608
            }
            return [
                *_null_violations(connection, source, output, present),
                *_enum_violations(connection, source, output, present),
                *_key_violations(connection, source, output, present),
            ]
        except OutputUnreadable:
            return []
        except duckdb.Error as error:
            message = f"nulls, enums and keys could not be checked: {first_line(error)}"
            return [ContractDifference(output.name, "output-unreadable", "error", message)]


def _null_violations(
    connection: duckdb.DuckDBPyConnection, source: str, output: Output, present: set[str]
) -> list[ContractDifference]:
    required = [c for c in output.columns if c.required and c.name in present]
    if not required:
        return []
    counts = ", ".join(f"count(*) - count({quote_identifier(c.name)})" for c in required)
    nulls = connection.execute(f"SELECT {counts} FROM {source}").fetchone()  # noqa: S608
    assert nulls is not None  # an aggregate always returns one row
    return [
        ContractDifference(
            output.name,
            "required-has-nulls",
            "error",
            f"column {column.name} is required but {count} row(s) hold null",
            column=column.name,
            candidate=str(count),
        )
        for column, count in zip(required, nulls, strict=True)
        if count
    ]


def _enum_violations(
    connection: duckdb.DuckDBPyConnection, source: str, output: Output, present: set[str]
) -> list[ContractDifference]:
    differences: list[ContractDifference] = []
    for column in output.columns:
        if column.enum is None or column.name not in present:
            continue
        # Enum values are compared as text, so an integer enum matches an integer column too.
        allowed = ", ".join(quote_literal(str(value)) for value in column.enum) or "NULL"
        value = f"CAST({quote_identifier(column.name)} AS VARCHAR)"
        outside = f"{value} IS NOT NULL AND {value} NOT IN ({allowed})"
        count_row = connection.execute(
            f"SELECT count(*) FROM {source} WHERE {outside}"  # noqa: S608
        ).fetchone()
        count = int(count_row[0]) if count_row else 0
        if not count:
            continue
        examples = connection.execute(
            f"SELECT DISTINCT left({value}, 80) AS v FROM {source} WHERE {outside} "  # noqa: S608
            f"ORDER BY v LIMIT {_MAX_OFFENDING_VALUES}"
        ).fetchall()
        shown = ", ".join(repr(row[0]) for row in examples)
        differences.append(
            ContractDifference(
                output.name,
                "enum-violated",
                "error",
                f"column {column.name}: {count} row(s) hold values outside "
                f"{enum_text(column)}, e.g. {shown}",
                column=column.name,
                baseline=enum_text(column),
                candidate=shown,
            )
        )
    return differences


def _key_violations(
    connection: duckdb.DuckDBPyConnection, source: str, output: Output, present: set[str]
) -> list[ContractDifference]:
    key = output.primary_key
    if not key or not set(key) <= present:
        return []
    columns = ", ".join(quote_identifier(column) for column in key)
    any_null = " OR ".join(f"{quote_identifier(column)} IS NULL" for column in key)
    row = connection.execute(
        f"SELECT count(*), sum(n) FROM (SELECT count(*) AS n FROM {source} "  # noqa: S608
        f"GROUP BY {columns} HAVING count(*) > 1)"
    ).fetchone()
    repeated_keys, repeated_rows = (int(row[0]), int(row[1] or 0)) if row else (0, 0)
    null_row = connection.execute(f"SELECT count(*) FROM {source} WHERE {any_null}").fetchone()  # noqa: S608
    null_keys = int(null_row[0]) if null_row else 0
    key_text = ", ".join(key)
    differences: list[ContractDifference] = []
    if repeated_keys:
        example = connection.execute(
            f"SELECT {', '.join(f'CAST({quote_identifier(c)} AS VARCHAR)' for c in key)} "  # noqa: S608
            f"FROM {source} GROUP BY {columns} HAVING count(*) > 1 ORDER BY ALL LIMIT 1"
        ).fetchone()
        shown = ", ".join(f"{c}={v}" for c, v in zip(key, example or (), strict=False))
        differences.append(
            ContractDifference(
                output.name,
                "primary-key-not-unique",
                "error",
                f"primary key ({key_text}) is not unique: {repeated_keys} key(s) repeated over "
                f"{repeated_rows} rows, e.g. {shown}",
                candidate=str(repeated_keys),
            )
        )
    if null_keys:
        differences.append(
            ContractDifference(
                output.name,
                "primary-key-has-nulls",
                "error",
                f"primary key ({key_text}) is null in {null_keys} row(s)",
                candidate=str(null_keys),
            )
        )
    return differences


def enum_text(column: Column) -> str:
    if column.enum is None:
        return "any value"
    return "[" + ", ".join(str(value) for value in column.enum) + "]"
