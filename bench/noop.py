"""Benchmark: no-op evaluation throughput of one worker process, and its peak memory.

A fleet of healthy products (the store_footfall example, copied into several git
repositories) is evaluated twice by one real ``specfleet worker --pool solo`` process (one
process: every task runs in it) through a private Redis:

1. window A, each product's first evaluation: fetch, clone into the mirror, load the spec,
   health and policy assessment, plan ("no-change": nothing to propose, so no verification);
2. window B, nothing changed: every evaluation must be a **no-op**, recorded after the fetch
   and fingerprint stages only (no clone, no scan, no LLM: checked from the stage rows).

Throughput is evaluations per second of the worker's busy time (first start to last finish,
from the evaluation rows); an evaluation's cost is its share of that time (queue included).
The full evaluation is timed around ``run_evaluation`` in this process. Peak RSS is the
worker's VmHWM after both windows. The index is the recorded fake PyPI index of the tests, so
the run is offline. Median of ``--trials`` runs, each with a fresh home, database and Redis.

    python bench/noop.py [--products 200] [--repos 20] [--trials 3] [--database postgresql]

Prints one JSON document; exits 1 when a target is missed (no-ops >= 50/s per worker process
and >= 100x cheaper than a first evaluation; peak RSS < 500 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlmodel import col, select  # noqa: E402

from bench.fanout import POSTGRES_ADMIN_URL, create_database, drop_database  # noqa: E402
from specfleet.core.db import (  # noqa: E402
    Evaluation,
    Product,
    StageResult,
    ensure_schema,
    make_engine,
    session_scope,
)
from specfleet.core.log import configure_logging  # noqa: E402
from specfleet.core.settings import Settings  # noqa: E402
from specfleet.scheduler.due import Schedule  # noqa: E402
from specfleet.scheduler.fanout import fan_out_window  # noqa: E402
from tests.support.fake_index import IndexScript, fake_index  # noqa: E402

SPECFLEET = str(Path(sys.executable).with_name("specfleet"))
EXAMPLE = REPO_ROOT / "examples" / "store_footfall"
ADVISORIES = REPO_ROOT / "examples" / "advisories"
TARGET_NOOP_PER_SECOND = 50.0
TARGET_CHEAPER = 100.0
TARGET_RSS_MB = 500.0
NOOP_STAGES = {"fetch", "fingerprint"}


def make_repos(root: Path, count: int) -> list[Path]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    repos = []
    for index in range(count):
        repo = root / f"footfall-{index:02d}"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("out", "__pycache__"))
        for command in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "add", "-A"],
            ["git", "commit", "-q", "-m", "example"],
        ):
            subprocess.run(command, cwd=repo, check=True, env=env)
        repos.append(repo)
    return repos


def run_window(engine: object, app: object, window: str, count: int, worker_log: Path) -> None:
    from specfleet.worker.tasks import send_evaluations

    schedule = Schedule.from_config("0 6 * * 1", "UTC")
    result = fan_out_window(
        engine,  # type: ignore[arg-type]
        schedule,
        window,
        None,
        lambda ids: send_evaluations(app, ids),
    )
    assert len(result.queued) == count, len(result.queued)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        with session_scope(engine) as session:  # type: ignore[arg-type]
            waiting = session.exec(
                select(Evaluation.id).where(
                    Evaluation.window == window, Evaluation.status != "done"
                )
            ).all()
        if not waiting:
            return
        time.sleep(0.2)
    raise RuntimeError(f"window {window} did not finish; see {worker_log}")


def window_figures(engine: object, window: str) -> dict[str, object]:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        rows = list(session.exec(select(Evaluation).where(Evaluation.window == window)).all())
        ids = [row.id for row in rows]
        stages = session.exec(
            select(StageResult.evaluation_id, StageResult.stage).where(
                col(StageResult.evaluation_id).in_(ids)
            )
        ).all()
    starts = [row.started_at for row in rows if row.started_at]
    ends = [row.finished_at for row in rows if row.finished_at]
    busy = (max(ends) - min(starts)).total_seconds()
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row.outcome or "none"] = outcomes.get(row.outcome or "none", 0) + 1
    return {
        "evaluations": len(rows),
        "outcomes": outcomes,
        "busy_seconds": busy,
        "per_second": len(rows) / busy if busy > 0 else float("inf"),
        "stages": sorted({stage for _, stage in stages}),
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def trial(
    root: Path, products: int, repos: int, index_url: str, database_url: str | None
) -> dict[str, object]:
    from tests.worker.fleet import PrivateRedis, wait_for

    redis_server = PrivateRedis(root / "redis")
    redis_server.start()
    home = root / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPECFLEET_")},
        "SPECFLEET_HOME": str(home),
        "SPECFLEET_REDIS_URL": redis_server.url,
        "SPECFLEET_ADVISORY_DIR": str(ADVISORIES),
        "SPECFLEET_INDEX_URL": index_url,
        "SPECFLEET_LOG_LEVEL": "warning",
    }
    if database_url:
        env["SPECFLEET_DATABASE_URL"] = database_url
    settings = Settings(home=home, redis_url=redis_server.url, database_url=database_url)
    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    sources = make_repos(root / "repos", repos)
    with session_scope(engine) as session:
        for index in range(products):
            product_id = f"footfall-{index:04d}"
            repo = sources[index % len(sources)]
            session.add(Product(id=product_id, name=product_id, repo_url=str(repo)))
    from specfleet.worker.app import make_app

    app = make_app(settings)
    log = root / "worker.log"
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            [SPECFLEET, "worker", "--pool", "solo", "--loglevel", "WARNING"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: worker.poll() is None, 5, "the worker to start")
        run_window(engine, app, "2026-W47", products, log)
        run_window(engine, app, "2026-W48", products, log)
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        app.close()
        redis_server.stop()
    first = window_figures(engine, "2026-W47")
    noop = window_figures(engine, "2026-W48")
    engine.dispose()
    if noop["outcomes"] != {"no-op": products}:
        raise RuntimeError(f"window B was not all no-ops: {noop['outcomes']}")
    stages: list[str] = noop["stages"]  # type: ignore[assignment]
    if not set(stages) <= NOOP_STAGES:
        raise RuntimeError(f"no-ops ran stages beyond {NOOP_STAGES}: {noop['stages']}")
    return {"first": first, "noop": noop, "peak_rss_mb": rss}


def full_evaluation_seconds(root: Path) -> float:
    """One full evaluation that proposes: a vulnerable pin, upgraded, verified (both sides
    built and tested in uv environments, cold cache) and published to the local forge. Run in
    this process against PyPI (network), the same code a worker runs."""
    from specfleet.worker.pipeline import queue_evaluation, run_evaluation
    from specfleet.worker.wiring import pipeline_deps
    from tests.worker.fleet import footfall_repo

    settings = Settings(home=root / "full-home", advisory_dir=ADVISORIES)
    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    repo = footfall_repo(root / "vulnerable", vulnerable=True)
    with session_scope(engine) as session:
        session.add(Product(id="vulnerable", name="vulnerable", repo_url=str(repo)))
    evaluation_id = queue_evaluation(engine, "vulnerable", "2026-W48", "weekly")
    deps = pipeline_deps(settings, engine)
    start = time.perf_counter()
    result = run_evaluation(evaluation_id, deps)
    seconds = time.perf_counter() - start
    if result.outcome != "proposed":
        raise RuntimeError(f"the full evaluation did not propose: {result.outcome} {result.error}")
    engine.dispose()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument(
        "--no-full", action="store_true", help="skip the full evaluation (needs PyPI)"
    )
    args = parser.parse_args()
    configure_logging(Settings(log_level="warning"))  # the in-process evaluation logs quietly
    results = []
    full: list[float] = []
    with fake_index(IndexScript.recorded()) as index_url:
        for _ in range(args.trials):
            with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
                url = create_database(args.postgres_url) if args.database == "postgresql" else None
                try:
                    results.append(trial(Path(scratch), args.products, args.repos, index_url, url))
                finally:
                    if url is not None:
                        drop_database(args.postgres_url, url)
                if not args.no_full:
                    full.append(full_evaluation_seconds(Path(scratch)))

    def median(path: tuple[str, str]) -> float:
        return statistics.median(float(r[path[0]][path[1]]) for r in results)  # type: ignore[index]

    noop_rate = median(("noop", "per_second"))
    # the cost of an evaluation in a worker, queue included: its share of the busy time
    noop_seconds = 1 / noop_rate
    first_seconds = 1 / median(("first", "per_second"))
    rss = statistics.median(float(r["peak_rss_mb"]) for r in results)  # type: ignore[arg-type]
    figures = {
        "benchmark": "noop_evaluations",
        "products": args.products,
        "repositories": args.repos,
        "trials": args.trials,
        "database": args.database,
        "broker": "redis (private redis-server)",
        "worker": "one process: specfleet worker --pool solo",
        "noop_per_second_median": round(noop_rate, 1),
        "noop_per_second": [round(float(r["noop"]["per_second"]), 1) for r in results],  # type: ignore[index]
        "noop_evaluation_ms": round(noop_seconds * 1000, 1),
        "noop_stages": results[0]["noop"]["stages"],  # type: ignore[index]
        "first_evaluation_per_second_median": round(median(("first", "per_second")), 1),
        "first_evaluation_ms": round(first_seconds * 1000, 1),
        "first_evaluation_outcomes": results[0]["first"]["outcomes"],  # type: ignore[index]
        "noop_cheaper_than_first_evaluation": round(first_seconds / noop_seconds, 1),
        "full_evaluation_ms_median": round(statistics.median(full) * 1000) if full else None,
        "full_evaluation": "vulnerable pin -> upgrade, verified (cold uv cache), MR opened",
        "noop_cheaper_than_full_evaluation": (
            round(statistics.median(full) / noop_seconds, 1) if full else None
        ),
        "worker_peak_rss_mb_median": round(rss, 1),
        "worker_peak_rss_mb": [round(float(r["peak_rss_mb"]), 1) for r in results],  # type: ignore[arg-type]
        "targets": {
            "noop_per_second": TARGET_NOOP_PER_SECOND,
            "noop_cheaper": TARGET_CHEAPER,
            "peak_rss_mb": TARGET_RSS_MB,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # the machine is shared: its load says how much the figures can be trusted
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
    }
    # "a full evaluation" is one that clones, scans, plans, verifies and publishes; a healthy
    # product's first evaluation stops after planning (nothing to verify) and is shown apart
    cheaper = statistics.median(full) / noop_seconds if full else 0.0
    figures["target_met"] = (
        noop_rate >= TARGET_NOOP_PER_SECOND and cheaper >= TARGET_CHEAPER and rss < TARGET_RSS_MB
    )
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
