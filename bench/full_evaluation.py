"""Benchmark: one full evaluation of the ``orders`` example, fetch to merge request, cold and
warm, with the time of every stage.

The deterministic planner (no LLM): fetch into the mirror cache, load the spec, assess
(dependency health and every policy rule, semgrep included), plan the upgrades, apply them as
a commit, verify (baseline and candidate built, tested and compared, failure modes provoked,
policies re-scanned), publish the merge request in the local forge, record.

- cold: a worker that never saw the product: empty mirror, environment, uv, verification and
  release-facts caches (packages and release facts come from PyPI);
- warm: a new database, repository and evaluation of the same product in a worker whose caches
  are filled (what the next window costs a long-lived worker when the product's inputs
  changed but its code did not).

    python bench/full_evaluation.py [--warm-runs 3] [--index-url https://pypi.org]

Prints one JSON document; exits 1 when a target is missed (cold < 30 s, warm < 10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlmodel import Session, col, select  # noqa: E402

from specfleet.core.db import StageResult, ensure_schema, make_engine  # noqa: E402
from specfleet.core.forges.local import LocalForge  # noqa: E402
from specfleet.core.git import MirrorCache  # noqa: E402
from specfleet.core.health.advisories import OsvDirectory  # noqa: E402
from specfleet.core.health.releases import DiskFactsCache, IndexClient  # noqa: E402
from specfleet.core.registry.decisions import Registration  # noqa: E402
from specfleet.core.registry.store import Registry  # noqa: E402
from specfleet.examples import materialise_examples  # noqa: E402
from specfleet.policies.packs import load_pack  # noqa: E402
from specfleet.policies.store import publish  # noqa: E402
from specfleet.worker.pipeline import queue_evaluation, run_evaluation  # noqa: E402
from specfleet.worker.pipeline.deps import PipelineDeps  # noqa: E402
from specfleet.worker.verify.environments import EnvironmentCache  # noqa: E402
from specfleet.worker.verify.results import SideResultCache  # noqa: E402

TARGET_COLD_SECONDS = 30.0
TARGET_WARM_SECONDS = 10.0
WINDOW = "2026-W48"


def one_evaluation(root: Path, caches: Path, index_url: str) -> tuple[float, str, dict[str, int]]:
    """A fresh database and repository; caches under ``caches`` (shared between runs)."""
    engine = make_engine(f"sqlite:///{root / 'specfleet.db'}")
    ensure_schema(engine)
    repos = {r.product_id: r.path for r in materialise_examples(root / "repos")}
    Registry(engine, MirrorCache(root / "registry-mirrors"), "bench@example.com").add(
        Registration(repo=str(repos["orders"]))
    )
    publish(engine, load_pack(REPO_ROOT / "policies" / "pack" / "v1"), "bench", "bench")
    forge = LocalForge(engine, root / "forge")
    deps = PipelineDeps(
        engine=engine,
        mirrors=MirrorCache(caches / "mirrors"),
        index=IndexClient(index_url, cache=DiskFactsCache(caches / "index")),
        advisories=OsvDirectory(REPO_ROOT / "examples" / "advisories"),
        forge_for=lambda _product: forge,
        environments=EnvironmentCache(caches / "environments"),
        results=SideResultCache(caches / "verifications"),
        work_dir=root / "work",
    )
    evaluation_id = queue_evaluation(engine, "orders", WINDOW, "manual")
    started = time.perf_counter()
    result = run_evaluation(evaluation_id, deps)
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        rows = session.exec(
            select(StageResult)
            .where(StageResult.evaluation_id == evaluation_id)
            .order_by(col(StageResult.id))
        ).all()
    stages = {row.stage: row.duration_ms for row in rows}
    engine.dispose()
    return seconds, result.outcome, stages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--index-url", default="https://pypi.org")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="specfleet-bench-full-") as scratch:
        root = Path(scratch)
        caches = root / "caches"
        os.environ["UV_CACHE_DIR"] = str(caches / "uv")
        cold, cold_outcome, cold_stages = one_evaluation(root / "cold", caches, args.index_url)
        warm_runs = [
            one_evaluation(root / f"warm-{n}", caches, args.index_url)
            for n in range(args.warm_runs)
        ]
    warm = statistics.median(seconds for seconds, _, _ in warm_runs)
    outcomes = {cold_outcome, *(outcome for _, outcome, _ in warm_runs)}
    stage_text = ", ".join(f"{name} {ms / 1000:.1f}" for name, ms in cold_stages.items())
    figures = {
        "benchmark": "full_evaluation",
        "product": "examples/orders",
        "planner": "deterministic remediators (no LLM)",
        "index": args.index_url,
        "outcomes": sorted(outcomes),
        "cold_seconds": round(cold, 2),
        "cold_stages_ms": cold_stages,
        "warm_seconds_median": round(warm, 2),
        "warm_seconds": [round(seconds, 2) for seconds, _, _ in warm_runs],
        "warm_stages_ms_last_run": warm_runs[-1][2] if warm_runs else {},
        "targets": [
            {
                "figure": "full evaluation of orders (fetch to MR), cold",
                "value": f"{cold:.1f} s ({stage_text})",
                "target": f"< {TARGET_COLD_SECONDS:.0f} s",
                "met": cold < TARGET_COLD_SECONDS and cold_outcome == "proposed",
            },
            {
                "figure": "full evaluation of orders (fetch to MR), warm caches",
                "value": f"{warm:.1f} s",
                "target": f"< {TARGET_WARM_SECONDS:.0f} s",
                "met": warm < TARGET_WARM_SECONDS and outcomes == {"proposed"},
            },
        ],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
    }
    print(json.dumps(figures, indent=2))
    return 0 if all(target["met"] for target in figures["targets"]) else 1  # type: ignore[index]


if __name__ == "__main__":
    sys.exit(main())
