"""Benchmark: fan-out of one window for 10,000 registered products into Redis.

Measures ``scheduler.fanout.fan_out_window`` as the scheduler runs it (two queries to decide,
one INSERT ... RETURNING per batch of evaluations, one Celery producer publishing a message
per evaluation) against the naive way (per product: one query for the product, one INSERT
and commit, one ``apply_async`` on its own), in the same run, on the same database and Redis.
Each trial starts from an empty evaluation table and an empty queue; the broker's queue length
is checked after each. Redis is a private ``redis-server`` on a free port; the database is
SQLite in a temp dir, or with ``--database postgresql`` a database created for the run on the
server at ``--postgres-url`` (the fleet setup) and dropped afterwards.

    python bench/fanout.py [--products 10000] [--trials 3] [--database sqlite|postgresql]

Prints one JSON document; exits 1 when a target is missed (under 5 s, and at least 10x
faster than the naive baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import delete, insert  # noqa: E402
from sqlmodel import select  # noqa: E402

from specfleet.core.db import Evaluation, Product, ensure_schema, make_engine, session_scope  # noqa: E402
from specfleet.core.db.types import utcnow  # noqa: E402
from specfleet.core.settings import Settings  # noqa: E402
from specfleet.scheduler.due import Schedule  # noqa: E402
from specfleet.scheduler.fanout import fan_out_window  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_SPEEDUP = 10.0
WINDOW = "2026-W48"
POSTGRES_ADMIN_URL = os.environ.get(
    "SPECFLEET_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"specfleet_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    port = free_port()
    process = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "yes", "--dir", str(directory)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return process, url
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def register(engine: object, count: int) -> None:
    now = utcnow()
    table = Product.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "id": f"p{n:05d}",
            "name": f"Product {n}",
            "repo_url": f"https://git.example.com/data/p{n:05d}.git",
            "branch": "main",
            "spec_path": "dataproduct.yaml",
            "forge": "local",
            "owners": [],
            "tags": [],
            "active": True,
            "registered_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with session_scope(engine) as session:  # type: ignore[arg-type]
        session.execute(insert(table), rows)


def reset(engine: object, client: object, queue: str) -> None:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        session.execute(delete(Evaluation))
    client.delete(queue)  # type: ignore[attr-defined]  # the queue only: bindings stay


def fan_out(engine: object, app: object, settings: Settings) -> float:
    from specfleet.worker.tasks import send_evaluations

    schedule = Schedule.from_config(settings.window_cron, settings.timezone)
    start = time.perf_counter()
    result = fan_out_window(
        engine,  # type: ignore[arg-type]
        schedule,
        WINDOW,
        None,
        lambda ids: send_evaluations(app, ids),
        settings.fanout_batch_size,
    )
    seconds = time.perf_counter() - start
    assert len(result.queued) > 0
    return seconds


def naive(engine: object, app: object, product_ids: list[str]) -> float:
    """One task per product, one query (and one transaction) each, no shared producer."""
    task = app.tasks["specfleet.evaluate"]  # type: ignore[attr-defined]
    start = time.perf_counter()
    for product_id in product_ids:
        with session_scope(engine) as session:  # type: ignore[arg-type]
            product = session.exec(select(Product).where(Product.id == product_id)).one()
            row = Evaluation(
                product_id=product.id, window=WINDOW, trigger="weekly", status="queued"
            )
            session.add(row)
            session.flush()
            evaluation_id = row.id
        task.apply_async((evaluation_id,))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN_URL)
    args = parser.parse_args()
    import redis

    with tempfile.TemporaryDirectory(prefix="specfleet-bench-") as scratch:
        root = Path(scratch)
        process, redis_url = start_redis(root)
        try:
            if args.database == "postgresql":
                database_url = create_database(args.postgres_url)
            else:
                database_url = f"sqlite:///{root / 'specfleet.db'}"
            settings = Settings(home=root / "home", database_url=database_url, redis_url=redis_url)
            from specfleet.worker.app import QUEUE, make_app

            app = make_app(settings)
            engine = make_engine(database_url)
            ensure_schema(engine)
            with session_scope(engine) as session:
                session.execute(delete(Evaluation))
                session.execute(delete(Product))
            register(engine, args.products)
            product_ids = [f"p{n:05d}" for n in range(args.products)]
            client = redis.Redis.from_url(redis_url)
            batched, baseline = [], []
            for _ in range(args.trials):
                reset(engine, client, QUEUE)
                batched.append(fan_out(engine, app, settings))
                assert client.llen(QUEUE) == args.products, client.llen(QUEUE)
                reset(engine, client, QUEUE)
                baseline.append(naive(engine, app, product_ids))
                assert client.llen(QUEUE) == args.products, client.llen(QUEUE)
            reset(engine, client, QUEUE)
            with session_scope(engine) as session:
                session.execute(delete(Product))
            app.close()
            engine.dispose()
        finally:
            process.terminate()
            process.wait(timeout=30)
            if args.database == "postgresql":
                drop_database(args.postgres_url, database_url)
    fast = statistics.median(batched)
    slow = statistics.median(baseline)
    figures = {
        "benchmark": "window_fanout",
        "products": args.products,
        "trials": args.trials,
        "database": args.database,
        "broker": "redis (private redis-server, appendonly)",
        "batch_size": settings.fanout_batch_size,
        "fanout_seconds_median": round(fast, 3),
        "fanout_seconds": [round(value, 3) for value in batched],
        "fanout_messages_per_second": round(args.products / fast),
        "naive_seconds_median": round(slow, 3),
        "naive_seconds": [round(value, 3) for value in baseline],
        "naive_messages_per_second": round(args.products / slow),
        "speedup": round(slow / fast, 1),
        "target_seconds": TARGET_SECONDS,
        "target_speedup": TARGET_SPEEDUP,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # the machine is shared: its load says how much the figures can be trusted
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
            "redis_server": subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
    }
    figures["target_met"] = fast < TARGET_SECONDS and slow / fast >= TARGET_SPEEDUP
    print(json.dumps(figures, indent=2))
    return 0 if figures["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
