"""Benchmark: dependency health of a 100-pin requirements file, cold cache vs warm cache.

Cold: an empty release-facts cache and a new advisory index, so every package is asked of the
index (PyPI's JSON API by default: the real cost a fleet pays once per package per day).
Warm: the same check as a running worker does it, with the facts cache filled and the
advisory index already in memory. Advisories come from an offline OSV directory (the PyPA
snapshot beside the checkout when present, else the tests' fixtures). Prints JSON; exits 1 if
warm is not at least 20 times faster than cold.

    python bench/health_cache.py [--index-url https://pypi.org] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from specfleet.core.health.advisories import OsvDirectory  # noqa: E402
from specfleet.core.health.releases import DiskFactsCache, IndexClient  # noqa: E402
from specfleet.core.health.report import check_health  # noqa: E402
from specfleet.core.spec import load_spec  # noqa: E402

REQUIREMENTS = REPO_ROOT / "bench" / "data" / "requirements-100.txt"
SNAPSHOT = REPO_ROOT.parent / "shared" / "data" / "advisory-database"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "advisories"
TARGET_RATIO = 20.0


def product(root: Path) -> Path:
    repo = root / "product"
    shutil.copytree(REPO_ROOT / "examples" / "store_footfall", repo)
    shutil.copy(REQUIREMENTS, repo / "requirements.txt")
    return repo


def one_check(
    repo: Path, cache_dir: Path, index_url: str, advisories: OsvDirectory
) -> tuple[float, int]:
    spec = load_spec(repo / "dataproduct.yaml")
    client = IndexClient(index_url, cache=DiskFactsCache(cache_dir))
    start = time.perf_counter()
    report = check_health(repo, spec, client, advisories, dt.date.today())
    seconds = time.perf_counter() - start
    known = sum(1 for item in report.pins if item.latest is not None)
    return seconds, known


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-url", default="https://pypi.org")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    advisories = SNAPSHOT if SNAPSHOT.is_dir() else FIXTURES
    cold, warm, known = [], [], []
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        root = Path(scratch)
        repo = product(root)
        for run in range(args.runs):
            cache = root / f"cache-{run}"
            source = OsvDirectory(advisories)
            seconds, resolved = one_check(repo, cache, args.index_url, source)
            cold.append(seconds)
            known.append(resolved)
            warm.append(one_check(repo, cache, args.index_url, source)[0])
    if min(known) < 90:
        print(
            f"only {min(known)} of 100 packages had index facts: is {args.index_url} reachable?",
            file=sys.stderr,
        )
        return 2
    ratio = statistics.median(cold) / statistics.median(warm)
    figures = {
        "benchmark": "health_cache",
        "pins": 100,
        "index": args.index_url,
        "advisories": str(advisories),
        "runs": args.runs,
        "cold_seconds_median": round(statistics.median(cold), 3),
        "cold_seconds": [round(value, 3) for value in cold],
        "warm_seconds_median": round(statistics.median(warm), 4),
        "warm_seconds": [round(value, 4) for value in warm],
        "warm_speedup": round(ratio, 1),
        "target_speedup": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
