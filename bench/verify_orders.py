"""Benchmark: full verification of the ``orders`` example, cold vs warm environment cache.

The candidate is the deterministic remediation of orders (pyarrow 14.0.0 -> 14.0.1, requests
2.28.2 -> 2.31.0), the baseline its current code: two environments, two builds, two test runs,
every failure mode, the contract and the data diff. Cold: an empty specfleet environment
cache and an empty uv cache (a worker that never built this product: packages come from the
index). Warm: both caches filled, as on every later week. Prints JSON; exits 1 when warm is
not under a third of cold.

    python bench/verify_orders.py [--runs 2]
"""

from __future__ import annotations

import argparse
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

from core.spec import load_spec  # noqa: E402
from worker.verify.environments import EnvironmentCache  # noqa: E402
from worker.verify.gate import verify  # noqa: E402

TARGET_RATIO = 1 / 3


def checkouts(root: Path) -> tuple[Path, Path]:
    baseline = root / "baseline"
    shutil.copytree(REPO_ROOT / "examples" / "orders", baseline)
    candidate = root / "candidate"
    shutil.copytree(baseline, candidate)
    requirements = candidate / "requirements.txt"
    requirements.write_text(
        requirements.read_text()
        .replace("pyarrow==14.0.0", "pyarrow==14.0.1")
        .replace("requests==2.28.2", "requests==2.31.0")
    )
    return baseline, candidate


def one_run(baseline: Path, candidate: Path, environments: Path) -> tuple[float, bool, dict]:
    spec = load_spec(candidate / "dataproduct.yaml")
    start = time.perf_counter()
    verdict = verify(spec, baseline, candidate, EnvironmentCache(environments))
    seconds = time.perf_counter() - start
    stages = {
        "baseline_build": verdict.baseline.build.duration_seconds
        if verdict.baseline.build
        else None,
        "candidate_build": verdict.candidate.build.duration_seconds
        if verdict.candidate.build
        else None,
        "candidate_tests": verdict.candidate.tests.duration_seconds
        if verdict.candidate.tests
        else None,
        "candidate_environment": verdict.candidate.environment.seconds
        if verdict.candidate.environment
        else None,
    }
    return seconds, verdict.publishable, stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    cold, warm, stages_warm, stages_cold = [], [], {}, {}
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        root = Path(scratch)
        baseline, candidate = checkouts(root)
        for run in range(args.runs):
            os.environ["UV_CACHE_DIR"] = str(root / f"uv-cache-{run}")
            environments = root / f"environments-{run}"
            seconds, publishable, stages_cold = one_run(baseline, candidate, environments)
            if not publishable:
                print(
                    "the candidate did not verify: the benchmark measures a green run",
                    file=sys.stderr,
                )
                return 2
            cold.append(seconds)
            seconds, _, stages_warm = one_run(baseline, candidate, environments)
            warm.append(seconds)
    ratio = statistics.median(warm) / statistics.median(cold)
    figures = {
        "benchmark": "verify_orders",
        "runs": args.runs,
        "cold_seconds_median": round(statistics.median(cold), 2),
        "cold_seconds": [round(value, 2) for value in cold],
        "warm_seconds_median": round(statistics.median(warm), 2),
        "warm_seconds": [round(value, 2) for value in warm],
        "warm_over_cold": round(ratio, 3),
        "target_warm_over_cold": round(TARGET_RATIO, 3),
        "target_met": ratio < TARGET_RATIO,
        "stages_cold_last_run": {k: round(v, 2) for k, v in stages_cold.items() if v is not None},
        "stages_warm_last_run": {k: round(v, 2) for k, v in stages_warm.items() if v is not None},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
