"""Data compatibility: the baseline's and the candidate's outputs, compared row by row.

Both outputs are built from the same pinned fixtures, so any difference is the candidate's
doing. Rows are joined on the spec's primary key (a FULL OUTER JOIN, NULL-safe) and every
non-key column both sides have is compared, numeric columns within the spec's ``tolerance``,
the rest exactly (``IS DISTINCT FROM``), in the manner of data-diff and datacompy. Without a
primary key the outputs are compared as multisets of rows (``EXCEPT ALL`` both ways).

Everything runs inside DuckDB: Python only receives counts and a bounded handful of example
rows, so a million-row output costs a few hundred milliseconds and no Python memory to speak
of. Columns only one side has are not compared here; the contract check reports them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from specfleet.core.errors import SpecfleetError
from specfleet.core.spec.model import Output
from specfleet.worker.verify.model import DataDiff, ValueChange
from specfleet.worker.verify.schemas import (
    OutputUnreadable,
    first_line,
    is_numeric_physical,
    open_output,
    output_file,
    quote_identifier,
    reader,
)

# Long values (JSON documents, free text) are cut in examples: the report shows, not stores.
_MAX_VALUE_CHARS = 200
_PRESENT = quote_identifier("__specfleet_present")

Key = tuple[tuple[str, str], ...]


class ComparisonFailed(SpecfleetError):
    """DuckDB could not compare two outputs it could read (an unexpected type, say)."""


def data_ok(diff: DataDiff, allowed_columns: Collection[str] = ()) -> bool:
    """True when the outputs hold the same rows and only ``allowed_columns`` changed values.

    An amendment that deliberately changes a column passes that column in ``allowed_columns``;
    rows appearing or disappearing are never allowed.
    """
    if diff.only_in_baseline or diff.only_in_candidate:
        return False
    return all(column in allowed_columns for column in diff.changed_columns)


def diff_output(
    baseline_dir: Path, candidate_dir: Path, output: Output, max_examples: int = 10
) -> DataDiff:
    """Compare ``output`` as the baseline and the candidate wrote it.

    A missing or unreadable side counts as empty, with a note: every row of the other side is
    then only on that side. Raises :class:`ComparisonFailed` when DuckDB cannot compare two
    readable outputs: a diff that did not run must never read as "identical".
    """
    with reader(baseline_dir, candidate_dir) as connection:
        baseline = _open_side(connection, baseline_dir, output, "baseline")
        candidate = _open_side(connection, candidate_dir, output, "candidate")
        try:
            if baseline.absent is not None or candidate.absent is not None:
                return _one_sided(connection, output, baseline, candidate, max_examples)
            key = tuple(output.primary_key)
            lacking = [k for k in key if k not in baseline.columns or k not in candidate.columns]
            if key and not lacking:
                return _keyed(connection, output, baseline, candidate, key, max_examples)
            if lacking:
                reason = f"primary key column(s) {', '.join(lacking)} missing from an output"
            else:
                reason = "no primary key"
            return _multiset(connection, output, baseline, candidate, reason, max_examples)
        except duckdb.Error as error:
            raise ComparisonFailed(f"{output.name}: {first_line(error)}") from error


@dataclass(frozen=True)
class _Side:
    """One output opened as a view named after its side."""

    name: str  # "baseline" or "candidate": also the view's name
    columns: dict[str, str]  # column -> DuckDB type, in file order
    rows: int
    absent: str | None = None  # why there is nothing to read: "missing" or the read problem


def _open_side(
    connection: duckdb.DuckDBPyConnection, directory: Path, output: Output, name: str
) -> _Side:
    try:
        path = output_file(directory, output)
        if path is None:
            return _Side(name, {}, 0, absent="missing")
        source = open_output(connection, path, output, f"{name}_output")
        connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {source.sql}")  # noqa: S608
        described = connection.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()  # noqa: S608
        counted = connection.execute(f"SELECT count(*) FROM {name}").fetchone()  # noqa: S608
    except OutputUnreadable as problem:
        return _Side(name, {}, 0, absent=f"unreadable ({problem})")
    except duckdb.Error as error:
        return _Side(name, {}, 0, absent=f"unreadable ({first_line(error)})")
    columns = {str(row[0]): str(row[1]) for row in described}
    return _Side(name, columns, int(counted[0]) if counted else 0)


def _keyed(
    connection: duckdb.DuckDBPyConnection,
    output: Output,
    baseline: _Side,
    candidate: _Side,
    key: tuple[str, ...],
    max_examples: int,
) -> DataDiff:
    compared = [c for c in baseline.columns if c in candidate.columns and c not in key]
    tolerances = {column.name: column.tolerance for column in output.columns}
    key_pairs = [_comparable(k, baseline, candidate) for k in key]
    value_pairs = [_comparable(c, baseline, candidate) for c in compared]
    flags = [
        _differs(b, c, tolerances.get(name), _both_numeric(name, baseline, candidate))
        for name, (b, c) in zip(compared, value_pairs, strict=True)
    ]
    both = f"b.{_PRESENT} AND c.{_PRESENT}"
    selected = [
        *(f"coalesce({b}, {c}) AS k{i}" for i, (b, c) in enumerate(key_pairs)),
        f"b.{_PRESENT} IS NOT NULL AS in_baseline",
        f"c.{_PRESENT} IS NOT NULL AS in_candidate",
        *(f"coalesce({both} AND ({flag}), false) AS d{i}" for i, flag in enumerate(flags)),
        *(f"{b} AS b{i}, {c} AS c{i}" for i, (b, c) in enumerate(value_pairs)),
    ]
    on = " AND ".join(f"{b} IS NOT DISTINCT FROM {c}" for b, c in key_pairs)
    interesting = " OR ".join(
        ["NOT (in_baseline AND in_candidate)", *(f"d{i}" for i in range(len(compared)))]
    )
    # Only the rows that differ are kept: usually a handful, at worst the whole output, which
    # DuckDB holds (and spills) itself.
    connection.execute(
        "CREATE TEMP TABLE differing AS SELECT * FROM ("  # noqa: S608
        f"SELECT {', '.join(selected)} "
        f"FROM (SELECT *, true AS {_PRESENT} FROM baseline) AS b "
        f"FULL OUTER JOIN (SELECT *, true AS {_PRESENT} FROM candidate) AS c ON {on}"
        f") WHERE {interesting}"
    )
    per_column = [f"count(*) FILTER (WHERE d{i})" for i in range(len(compared))]
    totals = connection.execute(
        "SELECT count(*) FILTER (WHERE in_baseline AND NOT in_candidate), "  # noqa: S608
        "count(*) FILTER (WHERE in_candidate AND NOT in_baseline), "
        f"{', '.join(['count(*) FILTER (WHERE in_baseline AND in_candidate)', *per_column])} "
        "FROM differing"
    ).fetchone()
    assert totals is not None  # an aggregate always returns one row
    only_in_baseline, only_in_candidate, changed_rows, *column_counts = (int(t) for t in totals)
    key_order = ", ".join(f"k{i}" for i in range(len(key)))
    key_text = ", ".join(f"CAST(k{i} AS VARCHAR)" for i in range(len(key)))

    def side_keys(where: str) -> tuple[Key, ...]:
        rows = connection.execute(
            f"SELECT {key_text} FROM differing WHERE {where} "  # noqa: S608
            f"ORDER BY {key_order} LIMIT {int(max_examples)}"
        ).fetchall()
        return tuple(_pairs(key, row) for row in rows)

    return DataDiff(
        output=output.name,
        baseline_rows=baseline.rows,
        candidate_rows=candidate.rows,
        only_in_baseline=only_in_baseline,
        only_in_candidate=only_in_candidate,
        changed_rows=changed_rows,
        changed_columns={
            name: count for name, count in zip(compared, column_counts, strict=True) if count
        },
        examples=_value_examples(connection, key, compared, column_counts, max_examples),
        missing_keys=side_keys("in_baseline AND NOT in_candidate") if only_in_baseline else (),
        extra_keys=side_keys("in_candidate AND NOT in_baseline") if only_in_candidate else (),
        note=_duplicate_note(connection, key, baseline, candidate),
        key=key,
        compared_columns=tuple(compared),
    )


def _value_examples(
    connection: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    compared: Sequence[str],
    column_counts: Sequence[int],
    max_examples: int,
) -> tuple[ValueChange, ...]:
    """Up to ``max_examples`` changed values, taken from each changed column in turn."""
    changed = [i for i, count in enumerate(column_counts) if count]
    if not changed or max_examples <= 0:
        return ()
    key_text = ", ".join(f"CAST(k{i} AS VARCHAR)" for i in range(len(key)))
    key_order = ", ".join(f"k{i}" for i in range(len(key)))
    queries = [
        f"(SELECT {i} AS col, CAST(b{i} AS VARCHAR), CAST(c{i} AS VARCHAR), {key_text} "  # noqa: S608
        f"FROM differing WHERE d{i} ORDER BY {key_order} LIMIT {int(max_examples)})"
        for i in changed
    ]
    rows = connection.execute(" UNION ALL ".join(queries)).fetchall()
    by_column: dict[int, list[ValueChange]] = {i: [] for i in changed}
    for column, before, after, *key_values in rows:
        by_column[int(column)].append(
            ValueChange(
                key=_pairs(key, key_values),
                column=compared[int(column)],
                baseline=_shown(before),
                candidate=_shown(after),
            )
        )
    # Round-robin, so a column with many changes does not hide the others.
    examples: list[ValueChange] = []
    queues = [by_column[i] for i in changed]
    while len(examples) < max_examples and any(queues):
        for queue in queues:
            if queue and len(examples) < max_examples:
                examples.append(queue.pop(0))
    return tuple(examples)


def _multiset(
    connection: duckdb.DuckDBPyConnection,
    output: Output,
    baseline: _Side,
    candidate: _Side,
    reason: str,
    max_examples: int,
) -> DataDiff:
    common = [c for c in baseline.columns if c in candidate.columns]
    note = (
        f"{reason}: compared as multisets of rows over the columns both outputs have "
        "(tolerances not applied)"
    )
    if not common:
        return DataDiff(
            output.name,
            baseline.rows,
            candidate.rows,
            baseline.rows,
            candidate.rows,
            0,
            note=f"{reason}, and no column in common: no row can match",
        )
    pairs = [_comparable(c, baseline, candidate) for c in common]
    names = [quote_identifier(name) for name in common]
    b_list = ", ".join(f"{b} AS {name}" for name, (b, _) in zip(names, pairs, strict=True))
    c_list = ", ".join(f"{c} AS {name}" for name, (_, c) in zip(names, pairs, strict=True))
    base_rows = f"SELECT {b_list} FROM baseline AS b"  # noqa: S608
    cand_rows = f"SELECT {c_list} FROM candidate AS c"  # noqa: S608
    as_text = ", ".join(f"CAST({name} AS VARCHAR)" for name in names)
    results: list[tuple[int, tuple[Key, ...]]] = []
    for first, second in ((base_rows, cand_rows), (cand_rows, base_rows)):
        connection.execute(f"CREATE OR REPLACE TEMP TABLE unmatched AS {first} EXCEPT ALL {second}")
        counted = connection.execute("SELECT count(*) FROM unmatched").fetchone()
        rows = connection.execute(
            f"SELECT {as_text} FROM unmatched ORDER BY {', '.join(names)} "  # noqa: S608
            f"LIMIT {int(max_examples)}"
        ).fetchall()
        results.append(
            (int(counted[0]) if counted else 0, tuple(_pairs(common, row) for row in rows))
        )
    (only_in_baseline, missing), (only_in_candidate, extra) = results
    return DataDiff(
        output=output.name,
        baseline_rows=baseline.rows,
        candidate_rows=candidate.rows,
        only_in_baseline=only_in_baseline,
        only_in_candidate=only_in_candidate,
        changed_rows=0,
        missing_keys=missing,
        extra_keys=extra,
        note=note,
        compared_columns=tuple(common),
    )


def _one_sided(
    connection: duckdb.DuckDBPyConnection,
    output: Output,
    baseline: _Side,
    candidate: _Side,
    max_examples: int,
) -> DataDiff:
    notes = [f"{side.name} output {side.absent}" for side in (baseline, candidate) if side.absent]
    present = candidate if baseline.absent else baseline
    if present.absent is not None:
        return DataDiff(output.name, 0, 0, 0, 0, 0, note="; ".join(notes))
    notes.append(f"every {present.name} row counts as only in the {present.name}")
    key = [k for k in output.primary_key if k in present.columns]
    shown = key if key and len(key) == len(output.primary_key) else list(present.columns)
    names = [quote_identifier(column) for column in shown]
    rows = connection.execute(
        f"SELECT {', '.join(f'CAST({name} AS VARCHAR)' for name in names)} "  # noqa: S608
        f"FROM {present.name} ORDER BY {', '.join(names)} LIMIT {int(max_examples)}"
    ).fetchall()
    examples = tuple(_pairs(shown, row) for row in rows)
    in_baseline = present is baseline
    return DataDiff(
        output=output.name,
        baseline_rows=baseline.rows,
        candidate_rows=candidate.rows,
        only_in_baseline=present.rows if in_baseline else 0,
        only_in_candidate=0 if in_baseline else present.rows,
        changed_rows=0,
        missing_keys=examples if in_baseline else (),
        extra_keys=() if in_baseline else examples,
        note="; ".join(notes),
    )


def _comparable(column: str, baseline: _Side, candidate: _Side) -> tuple[str, str]:
    """SQL for the column on each side, as types DuckDB can compare with each other.

    Same types, or numbers of any kind, compare natively; anything else (a csv column inferred
    as a date on one side and text on the other) is compared as text, since DuckDB would
    otherwise fail casting one to the other.
    """
    b, c = f"b.{quote_identifier(column)}", f"c.{quote_identifier(column)}"
    b_type, c_type = baseline.columns[column], candidate.columns[column]
    if b_type == c_type or _both_numeric(column, baseline, candidate):
        return b, c
    return f"CAST({b} AS VARCHAR)", f"CAST({c} AS VARCHAR)"


def _both_numeric(column: str, baseline: _Side, candidate: _Side) -> bool:
    return is_numeric_physical(baseline.columns[column]) and is_numeric_physical(
        candidate.columns[column]
    )


def _differs(b: str, c: str, tolerance: float | None, numeric: bool) -> str:
    if tolerance is None or not numeric:
        return f"{b} IS DISTINCT FROM {c}"
    # A NULL against a value differs whatever the tolerance; TRY turns an overflowing
    # subtraction (values far apart) into NULL, which also counts as a difference.
    within = f"coalesce(TRY(abs({b} - {c})) <= CAST({tolerance!r} AS DOUBLE), false)"
    return f"({b} IS DISTINCT FROM {c}) AND NOT {within}"


def _duplicate_note(
    connection: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    baseline: _Side,
    candidate: _Side,
) -> str:
    columns = ", ".join(quote_identifier(k) for k in key)
    repeated = []
    for side in (baseline, candidate):
        counted = connection.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {side.name} "  # noqa: S608
            f"GROUP BY {columns} HAVING count(*) > 1)"
        ).fetchone()
        if counted and counted[0]:
            repeated.append(f"{counted[0]} repeated in the {side.name}")
    if not repeated:
        return ""
    return (
        f"primary key ({', '.join(key)}) is not unique ({', '.join(repeated)}): rows sharing a "
        "key are compared pairwise, so counts are of joined pairs"
    )


def _pairs(columns: Sequence[str], values: Sequence[object]) -> Key:
    return tuple((column, _shown(value)) for column, value in zip(columns, values, strict=True))


def _shown(value: object) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"
