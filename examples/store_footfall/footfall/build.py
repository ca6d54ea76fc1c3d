"""Build ``daily_footfall.csv`` from the door sensors' hourly counts.

    python -m footfall.build --input DIR --output DIR

Standard library only: the job is small, and no dependencies means nothing to patch.

Exit codes: 0 built; 2 door_counts is missing; 3 it is empty; 4 it is unusable. A failed build
writes nothing: the input is read and checked completely first, and the output is written to a
temporary file that is renamed into place.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

EXIT_OK = 0
EXIT_INPUT_MISSING = 2
EXIT_INPUT_EMPTY = 3
EXIT_INPUT_INVALID = 4

INPUT_NAME = "door_counts"
INPUT_COLUMNS = ("store_id", "door_id", "hour_start", "entries", "exits")
OUTPUT_FILE = "daily_footfall.csv"
OUTPUT_COLUMNS = (
    "store_id",
    "day",
    "visitors",
    "avg_visitors_per_hour",
    "peak_hour_start",
    "doors_reporting",
    "coverage",
)


class InputProblem(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_INPUT_INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Count:
    """One door's count for one hour."""

    store_id: str
    door_id: str
    hour_start: datetime
    entries: int


def _parse_hour(text: str, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputProblem(f"{where}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InputProblem(f"{where}: {text!r} has no UTC offset")
    value = value.astimezone(timezone.utc)
    if (value.minute, value.second, value.microsecond) != (0, 0, 0):
        raise InputProblem(f"{where}: {text!r} is not the start of an hour")
    return value


def _parse_count(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputProblem(f"{where}: {text!r} is not a whole number") from None
    if value < 0:
        raise InputProblem(f"{where}: {text!r} is negative")
    return value


def read_counts(inputs_dir: Path) -> list[Count]:
    path = inputs_dir / f"{INPUT_NAME}.csv"
    if not path.is_file():
        raise InputProblem(f"input {INPUT_NAME} is missing: expected {path}", EXIT_INPUT_MISSING)
    if path.stat().st_size == 0:
        raise InputProblem(f"input {INPUT_NAME} is empty: {path} has 0 bytes", EXIT_INPUT_EMPTY)

    counts: list[Count] = []
    seen: set[tuple[str, str, datetime]] = set()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in INPUT_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise InputProblem(f"input {INPUT_NAME} lacks column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            where = f"{INPUT_NAME} line {line}"
            store_id, door_id = row["store_id"].strip(), row["door_id"].strip()
            if not store_id or not door_id:
                raise InputProblem(f"{where}: store_id and door_id are required")
            hour = _parse_hour(row["hour_start"].strip(), f"{where}, hour_start")
            key = (store_id, door_id, hour)
            if key in seen:
                # A repeated hour is a sensor re-sending its batch; adding it would double count.
                raise InputProblem(f"{where}: {store_id} {door_id} {hour.isoformat()} is repeated")
            seen.add(key)
            # exits is read only to validate the row; visitors are entries (amendment A2).
            _parse_count(row["exits"].strip(), f"{where}, exits")
            entries = _parse_count(row["entries"].strip(), f"{where}, entries")
            counts.append(Count(store_id, door_id, hour, entries))
    if not counts:
        raise InputProblem(
            f"input {INPUT_NAME} is empty: {path} has a header but no rows", EXIT_INPUT_EMPTY
        )
    return counts


def daily_footfall(counts: list[Count]) -> list[dict[str, str]]:
    """One row per (store, UTC day), sorted by store then day, values formatted for CSV."""
    doors_of_store: dict[str, set[str]] = defaultdict(set)
    by_day: dict[tuple[str, date], list[Count]] = defaultdict(list)
    for count in counts:
        doors_of_store[count.store_id].add(count.door_id)
        by_day[(count.store_id, count.hour_start.date())].append(count)

    rows = []
    for (store_id, day), day_counts in sorted(by_day.items()):
        per_hour: dict[datetime, int] = defaultdict(int)
        for count in day_counts:
            per_hour[count.hour_start] += count.entries
        visitors = sum(per_hour.values())
        # Busiest hour; on a tie the earliest, so the result does not depend on input order.
        peak = min(per_hour, key=lambda hour: (-per_hour[hour], hour))
        doors = {count.door_id for count in day_counts}
        # Complete when every door the store has reported for every hour the store reported.
        expected = len(doors_of_store[store_id]) * len(per_hour)
        rows.append(
            {
                "store_id": store_id,
                "day": day.isoformat(),
                "visitors": str(visitors),
                "avg_visitors_per_hour": f"{visitors / len(per_hour):.2f}",
                "peak_hour_start": peak.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "doors_reporting": str(len(doors)),
                "coverage": "complete" if len(day_counts) == expected else "partial",
            }
        )
    return rows


def write_csv_atomically(rows: list[dict[str, str]], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m footfall.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--input", required=True, type=Path, help="directory holding door_counts.csv"
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="directory to write daily_footfall.csv to"
    )
    args = parser.parse_args(argv)
    try:
        rows = daily_footfall(read_counts(args.input))
    except InputProblem as problem:
        print(f"store_footfall: error: {problem}", file=sys.stderr)
        return problem.exit_code
    write_csv_atomically(rows, args.output / OUTPUT_FILE)
    print(f"store_footfall: wrote {len(rows)} store-days to {args.output / OUTPUT_FILE}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
