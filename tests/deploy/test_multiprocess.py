"""Fleet mode for real on this machine: `specfleet web`, two `specfleet worker` processes and
`specfleet scheduler` against the local Redis and PostgreSQL run a window over the examples;
the merge requests and the metrics are right; SIGTERM stops every process cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from sqlalchemy import text

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.forges.local import LocalForge
from specfleet.examples import EXAMPLES_DIR, materialise_examples
from tests.conftest import SPECFLEET
from tests.support.fake_index import IndexScript, fake_index
from tests.worker.fleet import free_port, wait_for

pytestmark = [pytest.mark.network, pytest.mark.redis, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def index_url() -> Iterator[str]:
    with fake_index(IndexScript.recorded()) as url:
        yield url


class Processes:
    """The fleet's processes, each logging to its own file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.running: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(self, name: str, *args: str, extra: dict[str, str] | None = None) -> None:
        log = self.root / f"{name}.log"
        process = subprocess.Popen(
            [SPECFLEET, *args],
            env={**self.env, **(extra or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        self.running[name] = (process, log)

    @property
    def logs(self) -> list[Path]:
        return [log for _, log in self.running.values()]

    def stop_all(self, timeout: float = 90) -> dict[str, int | None]:
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, (process, _) in self.running.items():
            try:
                codes[name] = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes[name] = None
        return codes


def _metrics(url: str) -> str:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return ""


def test_web_two_workers_and_scheduler_run_a_window(
    tmp_path: Path, postgres_url: str, redis_url: str, index_url: str
) -> None:
    """A window over the examples in fleet mode: one MR per product that needs one, metrics
    scraped from web and workers, and every process exits 0 on SIGTERM."""
    redis.Redis.from_url(redis_url).flushdb()
    home = tmp_path / "home"
    web_port, metrics_a, metrics_b = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPECFLEET_")},
        "SPECFLEET_HOME": str(home),
        "SPECFLEET_DATABASE_URL": postgres_url,
        "SPECFLEET_REDIS_URL": redis_url,
        "SPECFLEET_ADVISORY_DIR": str(EXAMPLES_DIR / "advisories"),
        "SPECFLEET_INDEX_URL": index_url,
        "SPECFLEET_LOG_FORMAT": "json",
        "SPECFLEET_ACTOR": "platform@example.com",
        "PYTHONUNBUFFERED": "1",
    }
    assert subprocess.run([SPECFLEET, "db", "upgrade"], env=env, check=False).returncode == 0
    engine = make_engine(postgres_url)
    ensure_schema(engine)
    forge = LocalForge(engine, home / "forge")
    rows = [
        {"repo": forge.ensure_project(repo.product_id, repo.path), "tags": ["example"]}
        for repo in materialise_examples(tmp_path / "sources")
    ]
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump({"products": rows}))
    fleet = Processes(tmp_path, env)
    try:
        fleet.start("web", "web", "--port", str(web_port))
        fleet.start(
            "worker-a",
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            extra={"SPECFLEET_METRICS_PORT": str(metrics_a)},
        )
        fleet.start(
            "worker-b",
            "worker",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            extra={"SPECFLEET_METRICS_PORT": str(metrics_b)},
        )
        fleet.start("scheduler", "scheduler")
        wait_for(
            lambda: "ok" in _metrics(f"http://127.0.0.1:{web_port}/healthz"),
            60,
            "the web process",
            fleet.logs,
        )
        for command in (
            ["product", "import", str(tmp_path / "fleet.yaml")],
            ["policy", "publish", str(ROOT / "policies" / "pack" / "v1"), "-m", "v1"],
        ):
            done = subprocess.run([SPECFLEET, *command], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        window = subprocess.run(
            [SPECFLEET, "run-window", "--no-in-process"],
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert window.returncode == 0, window.stdout + window.stderr
        with engine.connect() as connection:
            merge_requests = connection.execute(
                text("SELECT product_id, state FROM merge_request ORDER BY product_id")
            ).all()
            outcomes = dict(
                connection.execute(
                    text(
                        "SELECT product_id, outcome FROM evaluation "
                        "WHERE outcome NOT IN ('no-op') ORDER BY id"
                    )
                ).all()
            )
        assert [tuple(row) for row in merge_requests] == [
            ("customer_revenue", "open"),
            ("orders", "open"),
            ("shop_marts", "open"),  # the dbt example: requests and idna within its bounds
        ], window.stdout
        assert outcomes.get("store_footfall") == "no-change"
        web_metrics = _metrics(f"http://127.0.0.1:{web_port}/metrics")
        assert 'specfleet_merge_requests{state="open"} 3.0' in web_metrics
        worker_metrics = _metrics(f"http://127.0.0.1:{metrics_a}/metrics") + _metrics(
            f"http://127.0.0.1:{metrics_b}/metrics"
        )
        assert "specfleet_evaluations_total{" in worker_metrics
        assert "specfleet_stage_duration_seconds_count{" in worker_metrics
    finally:
        codes = fleet.stop_all()
        engine.dispose()
    tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-3000:]}" for log in fleet.logs)
    assert codes == {"web": 0, "worker-a": 0, "worker-b": 0, "scheduler": 0}, (codes, tails)
    worker_log = (tmp_path / "worker-a.log").read_text() + (tmp_path / "worker-b.log").read_text()
    assert '"product": "orders"' in worker_log or '"product":"orders"' in worker_log, tails
