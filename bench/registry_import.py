"""Benchmark: `specfleet product import` of a 10,000-row file, first import and re-import.

The fleet is 10,000 products in 100 repositories (100 specs each, as platform monorepos hold
them), every spec distinct. Each trial uses a fresh SPECFLEET_HOME (empty database, no git
mirrors), runs the real CLI entry point on the file, then runs it again on the same file
(which must change nothing). Prints one JSON document; exits 1 when a target is missed.

    python bench/registry_import.py [--products 10000] [--repos 100] [--trials 3]
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
TEMPLATE = (REPO_ROOT / "tests" / "fixtures" / "specs" / "valid.yaml").read_text()
SPECFLEET = str(Path(sys.executable).with_name("specfleet"))
TARGET_SECONDS = 10.0


def make_fleet(root: Path, products: int, repos: int) -> Path:
    """Create ``repos`` git repositories holding ``products`` specs, and the CSV naming them."""
    per_repo = -(-products // repos)
    rows = ["repo,branch,spec,tags"]
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    made = 0
    for repo_index in range(repos):
        repo = root / f"monorepo-{repo_index:03d}"
        count = min(per_repo, products - made)
        if count <= 0:
            break
        for item in range(count):
            product_id = f"p{made + item:05d}"
            spec = repo / "products" / product_id / "dataproduct.yaml"
            spec.parent.mkdir(parents=True)
            spec.write_text(TEMPLATE.replace("id: invoices", f"id: {product_id}", 1))
            rows.append(f"{repo},main,products/{product_id}/dataproduct.yaml,bench")
        made += count
        for command in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "add", "-A"],
            ["git", "commit", "-q", "-m", "specs"],
        ):
            subprocess.run(command, cwd=repo, check=True, env=env)
    fleet = root / "fleet.csv"
    fleet.write_text("\n".join(rows) + "\n")
    return fleet


def timed_import(fleet: Path, home: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "SPECFLEET_HOME": str(home), "COLUMNS": "120"}
    start = time.perf_counter()
    result = subprocess.run(
        [SPECFLEET, "product", "import", str(fleet)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        root = Path(scratch)
        setup_start = time.perf_counter()
        fleet = make_fleet(root / "repos", args.products, args.repos)
        setup_seconds = time.perf_counter() - setup_start
        first, again = [], []
        for trial in range(args.trials):
            home = root / f"home-{trial}"
            seconds, result = timed_import(fleet, home)
            if result.returncode != 0:
                print(result.stdout, result.stderr, file=sys.stderr)
                return 2
            first.append(seconds)
            seconds, result = timed_import(fleet, home)
            if result.returncode != 0 or "Nothing changed" not in result.stdout:
                print(result.stdout, result.stderr, file=sys.stderr)
                return 2
            again.append(seconds)
    figures = {
        "benchmark": "registry_import",
        "products": args.products,
        "repositories": args.repos,
        "trials": args.trials,
        "setup_seconds": round(setup_seconds, 2),
        "first_import_seconds_median": round(statistics.median(first), 2),
        "first_import_seconds": [round(value, 2) for value in first],
        "reimport_seconds_median": round(statistics.median(again), 2),
        "reimport_seconds": [round(value, 2) for value in again],
        "products_per_second_first_import": round(args.products / statistics.median(first)),
        "target_seconds": TARGET_SECONDS,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    figures["target_met"] = (
        max(figures["first_import_seconds_median"], figures["reimport_seconds_median"])
        < TARGET_SECONDS
    )
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
