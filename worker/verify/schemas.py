"""The schema of a produced output, read from the file with DuckDB.

Outputs are written by product code, which the verifier never trusts and never runs here:
files are only read, through an in-memory DuckDB connection that may touch nothing but the
output directories it was opened for (a DuckDB output file could hold a view over any file
on the machine). Schemas come from metadata (the parquet footer, ``DESCRIBE``, the DuckDB
catalog), so a huge output costs no more than counting its rows.

The physical types DuckDB reports are mapped onto the spec's logical types
(:func:`logical_type`), so the contract checks compare like with like.

DuckDB takes no parameters for identifiers, nor for the table functions a view is built on, so
some SQL here and in the sibling modules is composed from :func:`quote_identifier` and
:func:`quote_literal` pieces; those lines carry ``noqa: S608``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from specfleet.core.errors import SpecfleetError
from specfleet.core.spec.model import Output, Spec
from specfleet.worker.verify.model import ColumnSchema, OutputSchema

_EXACT_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "integer",
    "TINYINT": "integer",
    # Unsigned integers map to the smallest signed logical type holding all their values.
    "UTINYINT": "integer",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "DOUBLE": "double",
    "FLOAT": "double",
    "REAL": "double",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    # Precision is the writer's choice (pandas writes nanoseconds), not part of the contract.
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp_tz",
    "TIMESTAMPTZ": "timestamp_tz",
    "JSON": "json",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_INTEGER_PHYSICAL = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
_FLOAT_PHYSICAL = frozenset({"DOUBLE", "FLOAT", "REAL"})


class OutputUnreadable(SpecfleetError):
    """An output file exists but cannot be read as its spec says; callers turn it into a value."""


def logical_type(physical: str) -> str:
    """The spec's logical type for a DuckDB type name; unknown types keep their own name."""
    name = physical.strip().upper()
    if name in _EXACT_TYPES:
        return _EXACT_TYPES[name]
    decimal = _DECIMAL.match(name)
    if decimal:
        return f"decimal({int(decimal.group(1))},{int(decimal.group(2))})"
    if name.startswith("ENUM("):
        # A DuckDB ENUM is text to every reader; its allowed values are checked from the data.
        return "string"
    return physical.strip().lower()


def is_numeric_physical(physical: str) -> bool:
    name = physical.strip().upper()
    return name in _INTEGER_PHYSICAL or name in _FLOAT_PHYSICAL or _DECIMAL.match(name) is not None


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def reader(*directories: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that can read files under ``directories`` and nowhere else.

    The configuration is locked once set, so SQL stored in a product's DuckDB file cannot undo
    it; extensions are never downloaded; times are rendered in UTC so values read the same on
    every machine.
    """
    connection = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": True},
    )
    try:
        allowed = ", ".join(
            quote_literal(str(directory.resolve()) + os.sep) for directory in directories
        )
        connection.execute(f"SET allowed_directories = [{allowed}]")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET lock_configuration = true")
        yield connection
    finally:
        connection.close()


def output_file(outputs_dir: Path, output: Output) -> Path | None:
    """Where ``output`` is in ``outputs_dir``; None when there is no file.

    Raises :class:`OutputUnreadable` when the path resolves outside the directory (a symlink
    planted by the build) or is not a regular file.
    """
    root = outputs_dir.resolve()
    candidate = outputs_dir / output.path
    if not candidate.exists() and not candidate.is_symlink():
        return None
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise OutputUnreadable(f"{output.path} resolves outside the outputs directory")
    if not resolved.exists():
        return None
    if not resolved.is_file():
        raise OutputUnreadable(f"{output.path} is not a regular file")
    return resolved


@dataclass(frozen=True)
class OutputSource:
    """An output opened on a connection."""

    sql: str  # what to put after FROM
    table: tuple[str, str, str] | None = None  # (database, schema, table) of a DuckDB output


def open_output(
    connection: duckdb.DuckDBPyConnection, path: Path, output: Output, alias: str
) -> OutputSource:
    """Make ``output`` readable on ``connection``.

    ``alias`` names the attached database of a DuckDB output, so two outputs can be open on one
    connection. Only base tables are read: a view would run SQL the product wrote.
    """
    if output.format == "parquet":
        return OutputSource(f"read_parquet({quote_literal(str(path))})")
    if output.format == "csv":
        return OutputSource(f"read_csv({quote_literal(str(path))})")
    table = output.table or output.name
    try:
        connection.execute(
            f"ATTACH {quote_literal(str(path))} AS {quote_identifier(alias)} (READ_ONLY)"
        )
        found = connection.execute(
            "SELECT schema_name FROM duckdb_tables() WHERE database_name = ? AND table_name = ? "
            "ORDER BY schema_name <> 'main', schema_name LIMIT 1",
            [alias, table],
        ).fetchone()
    except duckdb.Error as error:
        raise OutputUnreadable(f"{output.path}: {first_line(error)}") from error
    if found is None:
        raise OutputUnreadable(f"{output.path} has no table {table} (views are not read)")
    location = (alias, str(found[0]), table)
    return OutputSource(".".join(quote_identifier(part) for part in location), location)


def read_output_schema(outputs_dir: Path, output: Output) -> OutputSchema | None:
    """The columns, types and row count of ``output`` as written; None when the file is missing.

    A file that exists but cannot be read comes back as a schema with no columns and a
    ``problem``: a candidate writing a corrupt file is an expected outcome, not a crash.
    """
    try:
        path = output_file(outputs_dir, output)
    except OutputUnreadable as problem:
        return OutputSchema(output.name, output.path, (), 0, problem=str(problem))
    if path is None:
        return None
    with reader(outputs_dir) as connection:
        try:
            source = open_output(connection, path, output, "product_output")
            if output.format == "parquet":
                return _parquet_schema(connection, path, output)
            if source.table is None:
                return _csv_schema(connection, source.sql, output)
            return _duckdb_schema(connection, source, output)
        except OutputUnreadable as problem:
            return OutputSchema(output.name, output.path, (), 0, problem=str(problem))
        except duckdb.Error as error:
            problem_text = f"{output.path}: {first_line(error)}"
            return OutputSchema(output.name, output.path, (), 0, problem=problem_text)


def unexpected_outputs(outputs_dir: Path, spec: Spec) -> list[str]:
    """Files under ``outputs_dir`` that no output of the spec names, as sorted relative paths."""
    if not outputs_dir.is_dir():
        return []
    expected = {Path(output.path).as_posix() for output in spec.outputs}
    # DuckDB keeps a write-ahead log beside a database that was not checkpointed; it is part of
    # the output, not a stray file.
    expected |= {
        f"{Path(output.path).as_posix()}.wal"
        for output in spec.outputs
        if output.format == "duckdb"
    }
    found: list[str] = []
    for directory, _, files in os.walk(outputs_dir):
        for name in files:
            relative = (Path(directory) / name).relative_to(outputs_dir).as_posix()
            if relative not in expected:
                found.append(relative)
    return sorted(found)


def _parquet_schema(
    connection: duckdb.DuckDBPyConnection, path: Path, output: Output
) -> OutputSchema:
    file = [str(path)]
    described = connection.execute("DESCRIBE SELECT * FROM read_parquet(?)", file).fetchall()
    nodes = connection.execute(
        "SELECT name, repetition_type, num_children FROM parquet_schema(?)", file
    ).fetchall()
    optional = _top_level_optional([(str(n), str(r), c) for n, r, c in nodes])
    count = connection.execute(
        "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", file
    ).fetchone()
    columns = tuple(
        ColumnSchema(
            name=str(name),
            type=logical_type(str(physical)),
            # A REQUIRED parquet field can hold no null; writers differ in when they declare it.
            nullable=optional.get(str(name), True),
            physical=str(physical),
        )
        for name, physical, *_ in described
    )
    return OutputSchema(output.name, output.path, columns, int(count[0]) if count else 0)


def _top_level_optional(nodes: list[tuple[str, str, int | None]]) -> dict[str, bool]:
    """Whether each top-level field of a flattened parquet schema tree may be null."""
    if not nodes:
        return {}
    result: dict[str, bool] = {}
    position = 1

    def skip_subtree(index: int) -> int:
        children = nodes[index][2] or 0
        index += 1
        for _ in range(children):
            index = skip_subtree(index)
        return index

    for _ in range(nodes[0][2] or 0):
        if position >= len(nodes):
            break
        name, repetition, _children = nodes[position]
        result[name] = repetition != "REQUIRED"
        position = skip_subtree(position)
    return result


def _csv_schema(connection: duckdb.DuckDBPyConnection, source: str, output: Output) -> OutputSchema:
    # CSV carries no types: DuckDB's sniffer infers them from a sample of the values, so the
    # physical type is kept for messages and the contract check compares loosely.
    described = connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()  # noqa: S608
    names = [str(row[0]) for row in described]
    counts = ", ".join(["count(*)", *(f"count({quote_identifier(n)})" for n in names)])
    totals = connection.execute(f"SELECT {counts} FROM {source}").fetchone()  # noqa: S608
    assert totals is not None  # an aggregate always returns one row
    columns = tuple(
        ColumnSchema(
            name=name,
            type=logical_type(str(physical)),
            physical=str(physical),
            non_null=int(non_null),
        )
        for (name, physical, *_), non_null in zip(described, totals[1:], strict=True)
    )
    return OutputSchema(output.name, output.path, columns, int(totals[0]))


def _duckdb_schema(
    connection: duckdb.DuckDBPyConnection, source: OutputSource, output: Output
) -> OutputSchema:
    assert source.table is not None  # open_output sets it for every DuckDB output
    database, schema, table = source.table
    described = connection.execute(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [database, schema, table],
    ).fetchall()
    key = connection.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? "
        "AND constraint_type = 'PRIMARY KEY' LIMIT 1",
        [database, schema, table],
    ).fetchone()
    count = connection.execute(f"SELECT count(*) FROM {source.sql}").fetchone()  # noqa: S608
    columns = tuple(
        ColumnSchema(
            name=str(name),
            type=logical_type(str(physical)),
            nullable=bool(nullable),
            physical=str(physical),
        )
        for name, physical, nullable in described
    )
    return OutputSchema(
        output.name,
        output.path,
        columns,
        int(count[0]) if count else 0,
        primary_key=tuple(str(column) for column in key[0]) if key else (),
    )


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
