"""Build ``orders.parquet`` from ``raw_orders.csv`` and ``payments.csv``.

    python -m pipeline.build --input DIR --output DIR

Exit codes (the contract in dataproduct.yaml): 0 built; 2 an input is missing; 3 an input is
empty; 4 an input is unusable. On any non-zero exit nothing is left in the output directory:
every input is validated before the first byte is written, and the parquet file is written
under a temporary name and renamed into place, so readers never see half a file.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import EXIT_OK, InputProblem
from pipeline.inputs import PAYMENTS_COLUMNS, RAW_ORDERS_COLUMNS, read_csv_input
from pipeline.transform import build_orders, orphan_payment_orders

OUTPUT_FILE = "orders.parquet"

# Written explicitly rather than inferred by pyarrow, so the file's types are the spec's:
# inference would make money a double and the timestamps nanosecond, and both broke readers.
ORDERS_SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        pa.field("customer_id", pa.int64(), nullable=False),
        pa.field("customer_email", pa.string(), nullable=False),
        pa.field("ordered_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("item_count", pa.int32(), nullable=False),
        pa.field("list_amount", pa.decimal128(10, 2), nullable=False),
        pa.field("order_amount", pa.decimal128(10, 2), nullable=False),
    ]
)


def to_table(orders: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(orders, schema=ORDERS_SCHEMA, preserve_index=False)
    # When this file was built, for the lineage dashboard.
    built_at = datetime.now().isoformat(timespec="seconds")
    metadata = dict(table.schema.metadata or {})
    metadata[b"orders.built_at"] = built_at.encode()
    return table.replace_schema_metadata(metadata)


def write_parquet_atomically(table: pa.Table, target: Path) -> None:
    """Write to a temporary file beside ``target``, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build(inputs_dir: Path, outputs_dir: Path) -> int:
    """Build the product; returns the number of orders written."""
    raw_orders = read_csv_input(inputs_dir, "raw_orders", RAW_ORDERS_COLUMNS, rows_required=True)
    payments = read_csv_input(inputs_dir, "payments", PAYMENTS_COLUMNS, rows_required=False)
    orders = build_orders(raw_orders, payments)
    table = to_table(orders)

    orphans = orphan_payment_orders(raw_orders, payments)
    if orphans:
        print(
            f"orders: note: payments for orders not in raw_orders yet: {orphans}", file=sys.stderr
        )

    write_parquet_atomically(table, outputs_dir / OUTPUT_FILE)
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--input", required=True, type=Path, help="directory holding <input>.csv files"
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="directory to write orders.parquet to"
    )
    args = parser.parse_args(argv)
    try:
        count = build(args.input, args.output)
    except InputProblem as problem:
        print(f"orders: error: {problem}", file=sys.stderr)
        return problem.exit_code
    print(f"orders: wrote {count} orders to {args.output / OUTPUT_FILE}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
