"""Requirements of dataproduct.yaml, checked on the product built from the fixture."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from tests.conftest import FIXTURE, read_output, run_build


def test_columns_and_key(footfall):
    first = next(iter(footfall.values()))
    assert list(first) == [
        "store_id",
        "day",
        "visitors",
        "avg_visitors_per_hour",
        "peak_hour_start",
        "doors_reporting",
        "coverage",
    ]
    assert len(footfall) == 6  # 3 stores x 2 days, one row each


# R1
def test_visitors_sum_entries_over_doors(footfall):
    expected: dict[tuple[str, str], int] = defaultdict(int)
    with FIXTURE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            expected[(row["store_id"], row["hour_start"][:10])] += int(row["entries"])
    assert {key: int(row["visitors"]) for key, row in footfall.items()} == expected
    # AMS-01 on 1 March: hours of 70, 93, 106 and 87 entries over its two doors.
    assert footfall[("AMS-01", "2025-03-01")]["visitors"] == "356"
    assert footfall[("AMS-01", "2025-03-01")]["avg_visitors_per_hour"] == "89.00"


# R2
def test_exits_are_not_visitors(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "door_counts.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["exits"] = str(int(row["exits"]) * 10)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert run_build(inputs_dir, tmp_path / "out").returncode == 0
    visitors = {
        row["store_id"] + row["day"]: row["visitors"] for row in read_output(tmp_path / "out")
    }
    assert visitors["AMS-012025-03-01"] == "356"


# R3
def test_missing_door_hour_is_partial(footfall):
    # BER-02's second door sent nothing for 12:00 on 2 March.
    assert footfall[("BER-02", "2025-03-02")]["coverage"] == "partial"
    assert footfall[("BER-02", "2025-03-02")]["doors_reporting"] == "2"


# R3
def test_full_days_are_complete(footfall):
    partial = {key for key, row in footfall.items() if row["coverage"] == "partial"}
    assert partial == {("BER-02", "2025-03-02")}


# R4
def test_peak_hour_is_busiest_hour(footfall):
    assert footfall[("AMS-01", "2025-03-01")]["peak_hour_start"] == "2025-03-01T12:00:00Z"
    assert footfall[("LIS-03", "2025-03-02")]["peak_hour_start"] == "2025-03-02T13:00:00Z"


# R4
def test_peak_hour_ties_pick_earliest(footfall):
    # AMS-01 on 2 March had 79 entries at both 11:00 and 12:00.
    assert footfall[("AMS-01", "2025-03-02")]["peak_hour_start"] == "2025-03-02T11:00:00Z"
