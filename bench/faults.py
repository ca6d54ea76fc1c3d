"""Fault suite timings: each scenario of tests/faults and the recovery times it measured.

Runs ``pytest tests/faults`` once (its own PostgreSQL and Redis, real worker processes) with
a JUnit report, and prints one JSON object: every scenario's wall time, the recovery times
the scenarios record (``record_property``: seconds from the fault to the last evaluation
finished), and the whole suite's time against its 10-minute target.

    .venv/bin/python bench/faults.py [-k EXPRESSION]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
SUITE_TARGET_SECONDS = 600
RECOVERY_TARGET_SECONDS = 300


def scenarios(report: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):  # noqa: S314 (our file)
        failed = case.find("failure") is not None or case.find("error") is not None
        figures: dict[str, object] = {
            "seconds": round(float(case.get("time", 0)), 1),
            "passed": not failed and case.find("skipped") is None,
        }
        for prop in case.iter("property"):
            figures[prop.get("name", "?")] = float(prop.get("value", "nan"))
        found[case.get("name", "?")] = figures
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-k", default=None, help="pytest -k expression (default: every scenario)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "faults.xml"
        command = [
            sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
            f"--junitxml={report}", "-o", "junit_family=legacy",
        ]  # fmt: skip
        if args.k:
            command += ["-k", args.k]
        started = time.perf_counter()
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        total = round(time.perf_counter() - started, 1)
        found = scenarios(report) if report.exists() else {}
    passed = sum(1 for figures in found.values() if figures["passed"])
    targets = [
        {
            "figure": "fault suite (tests/faults), whole run",
            "value": f"{total} s, {passed}/{len(found)} passed",
            "target": f"< {SUITE_TARGET_SECONDS} s, all pass",
            "met": total < SUITE_TARGET_SECONDS and run.returncode == 0,
        }
    ]
    for name, figures in found.items():
        recovery = figures.get("recovery_seconds")
        if isinstance(recovery, float):
            targets.append(
                {
                    "figure": f"recovery after the fault: {name}",
                    "value": f"{recovery:.1f} s",
                    "target": f"< {RECOVERY_TARGET_SECONDS} s",
                    "met": recovery < RECOVERY_TARGET_SECONDS,
                }
            )
    print(json.dumps({"suite_seconds": total, "scenarios": found, "targets": targets}, indent=2))
    if run.returncode != 0:
        print(run.stdout[-4000:], file=sys.stderr)
    return 0 if all(item["met"] for item in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
