"""Build customer_revenue by running the SQL models in ``models/`` on an in-memory DuckDB.

    python -m pipeline.run --input DIR --output DIR

Steps: check the input files, load them into typed ``raw_<input>`` tables, check their contents,
run every model (one SELECT per file, materialised as a table named after the file), then write
``daily_revenue.parquet`` and ``customer_summary.duckdb`` into a staging directory and move them
into place. Any problem before the move leaves the output directory untouched.

Exit codes: 0 built; 2 an input is missing; 3 an input is empty; 4 an input is unusable.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

from pipeline.errors import (
    EXIT_INPUT_EMPTY,
    EXIT_INPUT_INVALID,
    EXIT_INPUT_MISSING,
    EXIT_OK,
    InputProblem,
)

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"

# Each input's columns and the DuckDB type they are cast to. Columns are matched by name, so
# the exports may reorder columns or add new ones without breaking the build.
INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (
        ("order_id", "BIGINT"),
        ("customer_id", "BIGINT"),
        ("ordered_at", "TIMESTAMPTZ"),
        ("status", "VARCHAR"),
        ("amount", "DECIMAL(10, 2)"),
    ),
    "customers": (
        ("customer_id", "BIGINT"),
        ("full_name", "VARCHAR"),
        ("email", "VARCHAR"),
        ("country", "VARCHAR"),
        ("segment", "VARCHAR"),
        ("signed_up_on", "DATE"),
        ("is_test_account", "BOOLEAN"),
    ),
}

# Models run in this order (later ones read earlier ones); models/<name>.sql becomes table <name>.
MODELS = ("stg_customers", "stg_orders", "daily_revenue", "customer_summary")

ORDER_STATUSES = ("completed", "pending", "refunded", "cancelled")
SEGMENTS = ("consumer", "business")

# Content checks on the raw tables: (input, what is wrong, query returning the offending keys).
CHECKS: tuple[tuple[str, str, str], ...] = (
    (
        "orders",
        "order_id is repeated",
        "SELECT order_id FROM raw_orders GROUP BY order_id HAVING count(*) > 1 ORDER BY order_id",
    ),
    (
        "orders",
        "a required value is blank",
        "SELECT order_id FROM raw_orders WHERE order_id IS NULL OR customer_id IS NULL"
        " OR ordered_at IS NULL OR status IS NULL OR amount IS NULL ORDER BY order_id",
    ),
    (
        "orders",
        "amount is negative",
        "SELECT order_id FROM raw_orders WHERE amount < 0 ORDER BY order_id",
    ),
    (
        "orders",
        f"status is not one of {', '.join(ORDER_STATUSES)}",
        "SELECT DISTINCT status FROM raw_orders WHERE lower(status) NOT IN "
        f"({', '.join(repr(s) for s in ORDER_STATUSES)}) ORDER BY status",
    ),
    (
        "customers",
        "customer_id is repeated",
        "SELECT customer_id FROM raw_customers GROUP BY customer_id HAVING count(*) > 1"
        " ORDER BY customer_id",
    ),
    (
        "customers",
        "a required value is blank",
        "SELECT customer_id FROM raw_customers WHERE customer_id IS NULL OR full_name IS NULL"
        " OR country IS NULL OR segment IS NULL OR signed_up_on IS NULL OR is_test_account IS NULL"
        " ORDER BY customer_id",
    ),
    (
        "customers",
        f"segment is not one of {', '.join(SEGMENTS)}",
        "SELECT DISTINCT segment FROM raw_customers WHERE segment NOT IN "
        f"({', '.join(repr(s) for s in SEGMENTS)}) ORDER BY segment",
    ),
)

DAILY_REVENUE_FILE = "daily_revenue.parquet"
CUSTOMER_SUMMARY_FILE = "customer_summary.duckdb"

# The DuckDB output's table is declared, not inferred, so its types, NOT NULLs and key are the
# spec's whatever the models compute internally.
CUSTOMER_SUMMARY_DDL = """
CREATE TABLE product_out.customer_summary (
    customer_id BIGINT PRIMARY KEY,
    full_name VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    segment VARCHAR NOT NULL CHECK (segment IN ('consumer', 'business')),
    signed_up_on DATE NOT NULL,
    first_order_at TIMESTAMPTZ,
    last_order_at TIMESTAMPTZ,
    order_count INTEGER NOT NULL,
    lifetime_revenue DECIMAL(12, 2) NOT NULL,
    is_repeat_customer BOOLEAN NOT NULL
)
"""
CUSTOMER_SUMMARY_COLUMNS = (
    "customer_id",
    "full_name",
    "country",
    "segment",
    "signed_up_on",
    "first_order_at",
    "last_order_at",
    "order_count",
    "lifetime_revenue",
    "is_repeat_customer",
)
DAILY_REVENUE_COLUMNS = (
    "day",
    "country",
    "order_count",
    "customer_count",
    "revenue",
    "avg_order_value",
)


def sql_string(value: str | Path) -> str:
    """A SQL string literal (file paths end up in COPY/ATTACH, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def check_input_file(inputs_dir: Path, name: str) -> Path:
    """Fail early, with the input's name, on files that are missing, empty or lack columns."""
    path = inputs_dir / f"{name}.csv"
    if not path.is_file():
        raise InputProblem(f"input {name} is missing: expected {path}", EXIT_INPUT_MISSING)
    if path.stat().st_size == 0:
        raise InputProblem(f"input {name} is empty: {path} has 0 bytes", EXIT_INPUT_EMPTY)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = [column.strip() for column in next(rows, [])]
        has_data = any(any(field.strip() for field in row) for row in rows)
    if not header or not any(header):
        raise InputProblem(f"input {name} is empty: {path} has no header", EXIT_INPUT_EMPTY)
    missing = [column for column, _ in INPUTS[name] if column not in header]
    if missing:
        raise InputProblem(f"input {name} lacks column(s) {', '.join(missing)}")
    if not has_data:
        # Both exports always have rows; a header alone means the export job failed midway.
        raise InputProblem(
            f"input {name} is empty: {path} has a header but no rows", EXIT_INPUT_EMPTY
        )
    return path


def load_input(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    columns = INPUTS[name]
    definition = ", ".join(f"{column} {type_}" for column, type_ in columns)
    casts = ", ".join(f"CAST(trim({column}) AS {type_})" for column, type_ in columns)
    con.execute(f"CREATE TABLE raw_{name} ({definition})")
    try:
        # Read everything as text and cast by column name: clearer errors than the CSV
        # sniffer's guesses, and independent of the column order of the export.
        con.execute(
            f"INSERT INTO raw_{name} SELECT {casts} FROM read_csv({sql_string(path)}, "
            "auto_detect = true, header = true, delim = ',', quote = '\"', all_varchar = true)"
        )
    except (duckdb.ConversionException, duckdb.InvalidInputException) as error:
        # Only data errors are the input's fault; anything else is a bug and gets a traceback.
        first_line = str(error).strip().splitlines()[0]
        raise InputProblem(f"input {name} has a value of the wrong type: {first_line}") from None


def check_contents(con: duckdb.DuckDBPyConnection) -> None:
    for name, problem, query in CHECKS:
        offending = [row[0] for row in con.execute(query).fetchall()]
        if offending:
            shown = ", ".join(str(value) for value in offending[:10])
            raise InputProblem(f"input {name}: {problem} ({shown})", EXIT_INPUT_INVALID)


def run_models(con: duckdb.DuckDBPyConnection) -> None:
    for model in MODELS:
        sql = (MODELS_DIR / f"{model}.sql").read_text(encoding="utf-8").strip().rstrip(";")
        con.execute(f"CREATE TABLE {model} AS {sql}")


def write_outputs(con: duckdb.DuckDBPyConnection, outputs_dir: Path) -> None:
    """Write both outputs into a staging directory, then move them into place together."""
    outputs_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=outputs_dir))
    try:
        parquet = staging / DAILY_REVENUE_FILE
        con.execute(
            f"COPY (SELECT {', '.join(DAILY_REVENUE_COLUMNS)} FROM daily_revenue "
            f"ORDER BY day, country) TO {sql_string(parquet)} (FORMAT PARQUET)"
        )
        database = staging / CUSTOMER_SUMMARY_FILE
        con.execute(f"ATTACH {sql_string(database)} AS product_out")
        try:
            con.execute(CUSTOMER_SUMMARY_DDL)
            columns = ", ".join(CUSTOMER_SUMMARY_COLUMNS)
            con.execute(
                f"INSERT INTO product_out.customer_summary ({columns}) "
                f"SELECT {columns} FROM customer_summary ORDER BY customer_id"
            )
        finally:
            con.execute("DETACH product_out")
        for name in (DAILY_REVENUE_FILE, CUSTOMER_SUMMARY_FILE):
            os.replace(staging / name, outputs_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build(inputs_dir: Path, outputs_dir: Path) -> None:
    # Check every file before loading any, so a missing input is reported as such even when
    # another one is also broken.
    paths = {name: check_input_file(inputs_dir, name) for name in INPUTS}
    con = duckdb.connect(":memory:")
    try:
        # Days are UTC days on every machine; CAST(timestamptz AS DATE) follows this setting.
        con.execute("SET TimeZone = 'UTC'")
        for name, path in paths.items():
            load_input(con, name, path)
        check_contents(con)
        run_models(con)
        write_outputs(con, outputs_dir)
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--input", required=True, type=Path, help="directory holding orders.csv and customers.csv"
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="directory to write the outputs to"
    )
    args = parser.parse_args(argv)
    try:
        build(args.input, args.output)
    except InputProblem as problem:
        print(f"customer_revenue: error: {problem}", file=sys.stderr)
        return problem.exit_code
    print(
        f"customer_revenue: wrote {DAILY_REVENUE_FILE} and {CUSTOMER_SUMMARY_FILE} to {args.output}"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
