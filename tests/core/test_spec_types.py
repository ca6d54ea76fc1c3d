"""Column types as people write them (varchar, int, float, ...) and output paths as they spell them."""

from __future__ import annotations

from pathlib import Path

import pytest

from specfleet.core.spec import check_spec_bytes

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
VALID = (FIXTURES / "valid.yaml").read_text()


def load(text: str):  # type: ignore[no-untyped-def]
    check = check_spec_bytes(text.encode(), "dataproduct.yaml")
    return check


@pytest.mark.parametrize(
    ("declared", "logical"),
    [
        ("varchar", "string"),
        ("VARCHAR(255)", "string"),
        ("text", "string"),
        ("character varying(20)", "string"),
        ("int", "integer"),
        ("INT4", "integer"),
        ("smallint", "integer"),
        ("int8", "bigint"),
        ("long", "bigint"),
        ("float", "double"),
        ("double precision", "double"),
        ("real", "double"),
        ("bool", "boolean"),
        ("datetime", "timestamp"),
        ("TIMESTAMP WITH TIME ZONE", "timestamp_tz"),
        ("timestamptz", "timestamp_tz"),
        ("numeric(12, 2)", "decimal(12,2)"),
        ("decimal(10)", "decimal(10,0)"),
        ("jsonb", "json"),
    ],
)
def test_sql_type_names_are_accepted_and_normalised(declared: str, logical: str) -> None:
    """The SQL spellings of DuckDB, dbt, Spark and PostgreSQL validate as the logical type."""
    text = VALID.replace(
        "        type: string\n        required: true",
        f"        type: '{declared}'\n        required: true",
        1,
    )
    check = load(text)
    assert check.valid, [problem.render() for problem in check.problems]
    status = check.spec.output("invoices").columns[3]  # type: ignore[union-attr]
    assert status.type == logical
    assert status.declared_type == declared


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("numeric", "no precision"),
        ("varchar2000", "unknown column type"),
        ("geometry", "int, float"),
    ],
)
def test_unmappable_types_are_refused_with_the_line(declared: str, expected: str) -> None:
    text = VALID.replace("type: bigint", f"type: {declared}", 1)
    check = load(text)
    assert not check.valid
    (problem,) = check.problems
    assert expected in problem.render()
    assert problem.line == next(
        n for n, line in enumerate(text.splitlines(), 1) if declared in line
    )


def test_two_outputs_in_one_duckdb_file_one_per_table() -> None:
    """Two marts in one DuckDB file are two outputs; ./x and x are the same path."""
    first = VALID.replace(
        "    format: parquet\n    path: invoices.parquet\n",
        "    format: duckdb\n    path: ./warehouse.duckdb\n    table: invoices\n",
    )
    second = (
        "  - name: invoice_totals\n    format: duckdb\n    path: warehouse.duckdb\n"
        "    table: totals\n    columns:\n      - {name: total, type: float}\n"
    )
    head, tail = first.split("constraints:", 1)
    check = load(head + second + "constraints:" + tail)
    assert check.valid, [problem.render() for problem in check.problems]
    assert {output.path for output in check.spec.outputs} == {"warehouse.duckdb"}  # type: ignore[union-attr]
    same_table = load(
        head + second.replace("table: totals", "table: invoices") + "constraints:" + tail
    )
    assert not same_table.valid
    assert "duplicate path" in same_table.problems[0].render()


def test_dot_slash_paths_are_the_same_file() -> None:
    head, tail = VALID.split("constraints:", 1)
    second = (
        "  - name: copy\n    format: parquet\n    path: ./invoices.parquet\n"
        "    columns:\n      - {name: total, type: float}\n"
    )
    check = load(head + second + "constraints:" + tail)
    assert not check.valid
    assert "duplicate path 'invoices.parquet'" in check.problems[0].render()
