"""Benchmark: ``specfleet health`` vs ``pip-audit`` on the same 70-pin lock and advisories.

Both run as a user runs them, in fresh processes, warm (each is run once untimed first, so
release facts and pip-audit's cache are filled) and interleaved run by run so that machine
load hits both alike. pip-audit asks the same OSV records through specfleet's OSV server
(what ``specfleet advisories serve`` runs); specfleet health reads them directly and also
reports each pin's latest release and age, which pip-audit does not. Advisories come from
the PyPA snapshot beside the checkout when present, else the tests' fixtures. Release facts
come from ``--index-url`` (PyPI by default) for the untimed warm-up only. Prints JSON; exits
1 if health's median is slower than pip-audit's.

    python bench/health_vs_pip_audit.py [--runs 5] [--index-url https://pypi.org]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from specfleet.core.health.advisories import OsvDirectory, start_server  # noqa: E402

REQUIREMENTS = REPO_ROOT / "bench" / "data" / "requirements-100.txt"
SNAPSHOT = REPO_ROOT.parent / "shared" / "data" / "advisory-database"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "advisories"
PINS = 70
BIN = Path(sys.executable).parent


def lock_file(root: Path) -> Path:
    """The first 70 pins of the 100-pin benchmark file, as a requirements lock."""
    pins = [line for line in REQUIREMENTS.read_text().splitlines() if "==" in line][:PINS]
    path = root / "requirements.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


def quiet_logs() -> None:
    """The OSV server logs each request at debug level; the JSON on stdout must stay clean."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default="https://pypi.org")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    advisories = SNAPSHOT if SNAPSHOT.is_dir() else FIXTURES
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        root = Path(scratch)
        lock = lock_file(root)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            # warm means compiled too: the warm-up run leaves both tools' bytecode here, as
            # an installed package has it, even where the environment forbids writing it
            "PYTHONPYCACHEPREFIX": str(root / "pycache"),
            "SPECFLEET_HOME": str(root / "home"),
            "SPECFLEET_INDEX_URL": args.index_url,
            "SPECFLEET_ADVISORY_DIR": str(advisories),
            "NO_COLOR": "1",
        }
        quiet_logs()
        with start_server(OsvDirectory(advisories)) as server:
            health = [str(BIN / "specfleet"), "health", str(lock), "--json"]
            audit = [
                str(BIN / "pip-audit"),
                "--requirement", str(lock),
                "--no-deps", "--disable-pip",
                "--vulnerability-service", "osv", "--osv-url", server.query_url,
                "--progress-spinner", "off", "--format", "json",
                "--cache-dir", str(root / "pip-audit-cache"),
            ]  # fmt: skip
            timed(health, env)  # warm-up: release facts cached
            timed(audit, env)
            health_times, audit_times = [], []
            for _ in range(args.runs):
                health_times.append(timed(health, env)[0])
                audit_times.append(timed(audit, env)[0])
    health_median = statistics.median(health_times)
    audit_median = statistics.median(audit_times)
    figures = {
        "benchmark": "health_vs_pip_audit",
        "pins": PINS,
        "advisories": str(advisories),
        "runs": args.runs,
        "health_seconds_median": round(health_median, 3),
        "health_seconds": [round(value, 3) for value in health_times],
        "pip_audit_seconds_median": round(audit_median, 3),
        "pip_audit_seconds": [round(value, 3) for value in audit_times],
        "ratio": round(health_median / audit_median, 2),
        "target": "health no slower than pip-audit",
        "target_met": health_median <= audit_median,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
