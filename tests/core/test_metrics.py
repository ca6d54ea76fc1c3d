"""Prometheus metrics: what a scrape of a worker's port and of the web's /metrics shows."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from specfleet.core import metrics
from specfleet.core.db import Evaluation, MergeRequest, Product, session_scope
from specfleet.core.metrics import (
    FleetCollector,
    fleet_registry,
    metrics_asgi_app,
    redis_queue_depth,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def worker_port() -> Iterator[int]:
    port = free_port()
    metrics.start_worker_metrics_server(port, address="127.0.0.1")
    yield port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def test_worker_port_exposes_recorded_evaluations_and_stages(worker_port: int) -> None:
    """Evaluations by outcome/trigger and stage durations recorded in a worker are scraped."""
    before = scrape(worker_port)
    metrics.count_evaluation("published", "weekly")
    metrics.count_evaluation("published", "weekly")
    metrics.count_evaluation("no-op", "policy")
    metrics.observe_stage("verify", 42.0, "ok")
    metrics.observe_stage("fetch", 0.2)
    after = scrape(worker_port)

    name = "specfleet_evaluations_total"
    assert (
        value(after, name, outcome="published", trigger="weekly")
        - value(before, name, outcome="published", trigger="weekly")
        == 2
    )
    assert (
        value(after, name, outcome="no-op", trigger="policy")
        - value(before, name, outcome="no-op", trigger="policy")
        == 1
    )
    histogram = "specfleet_stage_duration_seconds"
    assert (
        value(after, f"{histogram}_count", stage="verify", outcome="ok")
        - value(before, f"{histogram}_count", stage="verify", outcome="ok")
        == 1
    )
    # 42 s lands in the 60 s bucket but not in the 30 s one
    grew = value(after, f"{histogram}_bucket", stage="verify", outcome="ok", le="60.0") - value(
        before, f"{histogram}_bucket", stage="verify", outcome="ok", le="60.0"
    )
    stayed = value(after, f"{histogram}_bucket", stage="verify", outcome="ok", le="30.0") - value(
        before, f"{histogram}_bucket", stage="verify", outcome="ok", le="30.0"
    )
    assert (grew, stayed) == (1, 0)
    assert value(after, f"{histogram}_count", stage="fetch", outcome="ok") >= 1


def test_llm_tokens_cost_and_forge_errors_are_counted(worker_port: int) -> None:
    """LLM tokens by kind, cost in USD and forge API errors by forge and kind are exported."""
    before = scrape(worker_port)
    metrics.count_llm_call(
        purpose="plan",
        outcome="ok",
        prompt_tokens=1200,
        cached_prompt_tokens=1000,
        completion_tokens=300,
        cost_usd=0.25,
    )
    metrics.count_llm_call(purpose="repair", outcome="timeout")
    metrics.count_forge_error("gitlab", "rate-limited")
    after = scrape(worker_port)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("specfleet_llm_tokens_total", kind="prompt") == 1200
    assert delta("specfleet_llm_tokens_total", kind="cached_prompt") == 1000
    assert delta("specfleet_llm_tokens_total", kind="completion") == 300
    assert delta("specfleet_llm_cost_usd_total") == pytest.approx(0.25)
    assert delta("specfleet_llm_calls_total", purpose="repair", outcome="timeout") == 1
    assert delta("specfleet_forge_api_errors_total", forge="gitlab", kind="rate-limited") == 1


def test_recording_functions_never_raise_on_odd_input(worker_port: int) -> None:
    """Missing or malformed figures from a provider are ignored instead of failing a task."""
    before = scrape(worker_port)
    metrics.observe_stage("plan", "not a number", None)  # type: ignore[arg-type]
    metrics.count_llm_call(
        purpose=None, outcome=None, prompt_tokens=None, completion_tokens=-5, cost_usd=None
    )
    metrics.count_evaluation(None, None)
    metrics.count_forge_error("x" * 500, "")
    after = scrape(worker_port)
    assert value(after, "specfleet_evaluations_total", outcome="unknown", trigger="unknown") == (
        value(before, "specfleet_evaluations_total", outcome="unknown", trigger="unknown") + 1
    )
    # a label value is bounded, so one odd value cannot become a huge series name
    assert value(after, "specfleet_forge_api_errors_total", forge="x" * 40, kind="unknown") >= 1
    assert value(after, "specfleet_llm_tokens_total", kind="completion") == value(
        before, "specfleet_llm_tokens_total", kind="completion"
    )


def add_rows(engine: Engine) -> None:
    with session_scope(engine) as session:
        for name in ("orders", "customer_revenue", "store_footfall"):
            session.add(Product(id=name, name=name, repo_url=f"file:///srv/{name}.git"))
        session.flush()
        rows = [
            ("orders", "queued", None),
            ("customer_revenue", "queued", None),
            ("store_footfall", "running", None),
            ("orders", "done", "published"),
            ("customer_revenue", "done", "no-op"),
            ("store_footfall", "done", "no-op"),
        ]
        for index, (product, status, outcome) in enumerate(rows):
            session.add(
                Evaluation(
                    product_id=product,
                    window=f"2026-W4{index}",
                    trigger="weekly",
                    fingerprint=f"f{index}",
                    status=status,
                    outcome=outcome,
                )
            )
        for product, state in (("orders", "open"), ("customer_revenue", "merged")):
            session.add(MergeRequest(product_id=product, forge="local", title="t", state=state))
        # a new merge request is open by default
        session.add(MergeRequest(product_id="store_footfall", forge="local", title="t"))


def test_fleet_gauges_reflect_database_rows(engine: Engine) -> None:
    """Queue depth, evaluations by status and merge requests by state come from the rows."""
    registry = fleet_registry(engine)
    from prometheus_client import generate_latest

    empty = generate_latest(registry).decode()
    assert value(empty, "specfleet_database_up") == 1
    assert value(empty, "specfleet_queue_depth", source="database") == 0

    add_rows(engine)
    text = generate_latest(registry).decode()
    assert value(text, "specfleet_queue_depth", source="database") == 2
    assert value(text, "specfleet_evaluations", status="running", outcome="none") == 1
    assert value(text, "specfleet_evaluations", status="done", outcome="no-op") == 2
    assert value(text, "specfleet_evaluations", status="done", outcome="published") == 1
    assert value(text, "specfleet_merge_requests", state="open") == 2
    assert value(text, "specfleet_merge_requests", state="merged") == 1
    # the process metrics are served alongside the gauges
    assert "specfleet_evaluations_total" in text


def test_fleet_gauges_show_queue_ages_expired_leases_and_workers_seen(engine: Engine) -> None:
    """The gauges `fleet status` shows: oldest queued/running age, expired leases, workers."""
    import datetime as dt

    from prometheus_client import generate_latest

    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="file:///srv/orders.git"))
        session.flush()
        session.add(
            Evaluation(
                product_id="orders", window="2026-W40", trigger="weekly", fingerprint="a",
                status="queued", queued_at=now - dt.timedelta(seconds=600),
            )
        )  # fmt: skip
        session.add(
            Evaluation(
                product_id="orders", window="2026-W41", trigger="weekly", fingerprint="b",
                status="running", claimed_at=now - dt.timedelta(seconds=90),
                lease_owner="t@host:1", lease_expires_at=now - dt.timedelta(seconds=1),
            )
        )  # fmt: skip
    text = generate_latest(fleet_registry(engine, workers_seen=lambda: 3)).decode()
    assert 600 <= value(text, "specfleet_oldest_queued_age_seconds") < 900
    assert 90 <= value(text, "specfleet_oldest_running_age_seconds") < 390
    assert value(text, "specfleet_leases_expired") == 1
    assert value(text, "specfleet_workers_seen") == 3


def test_unreachable_database_is_a_sample_not_a_failed_scrape() -> None:
    """A scrape while the database is down answers database_up 0 instead of an error."""
    from prometheus_client import generate_latest

    from specfleet.core.db import make_engine

    # nothing listens on port 1: the connection is refused at once
    missing = make_engine("postgresql+psycopg://specfleet@127.0.0.1:1/specfleet")
    text = generate_latest(fleet_registry(missing)).decode()
    assert value(text, "specfleet_database_up") == 0
    assert ("specfleet_queue_depth", (("source", "database"),)) not in samples(text)


@pytest.mark.redis
def test_broker_queue_depth_counts_waiting_messages(engine: Engine, redis_url: str) -> None:
    """With Redis as broker, the messages waiting in the queue are a queue_depth sample."""
    import redis

    client = redis.Redis.from_url(redis_url)
    queue = "specfleet-metrics-test"
    client.delete(queue, f"{queue}\x06\x163")
    client.rpush(queue, "a", "b", "c")
    client.rpush(f"{queue}\x06\x163", "d")
    try:
        collector = FleetCollector(engine, redis_queue_depth(redis_url, queue))
        families = {family.name: family for family in collector.collect()}
        depth = {s.labels["source"]: s.value for s in families["specfleet_queue_depth"].samples}
        assert depth["broker"] == 4
    finally:
        client.delete(queue, f"{queue}\x06\x163")


def test_asgi_app_serves_the_exposition(engine: Engine) -> None:
    """The app the web process mounts at /metrics answers a GET with the gauges."""
    add_rows(engine)
    app = metrics_asgi_app(engine)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "query_string": b"",
        "headers": [(b"accept", b"text/plain")],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")  # type: ignore[misc]
    assert value(body.decode(), "specfleet_queue_depth", source="database") == 2


MULTIPROCESS_SCRIPT = """
import multiprocessing, sys, urllib.request
from specfleet.core import metrics

port = int(sys.argv[1])
metrics.start_worker_metrics_server(port, address="127.0.0.1")

def task(outcome):
    metrics.count_evaluation(outcome, "weekly")
    metrics.observe_stage("verify", 3.0, "ok")

# forked children, as Celery's prefork pool makes them
context = multiprocessing.get_context("fork")
children = [context.Process(target=task, args=(o,)) for o in ("published", "published", "no-op")]
for child in children:
    child.start()
for child in children:
    child.join()
    metrics.mark_process_dead(child.pid)
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
    sys.stdout.write(response.read().decode())
"""


def test_prefork_children_are_added_up_in_multiprocess_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With PROMETHEUS_MULTIPROC_DIR, the worker's port shows what every pool child counted."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    directory = tmp_path / "prometheus"
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(free_port())],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert value(text, "specfleet_evaluations_total", outcome="published", trigger="weekly") == 2
    assert value(text, "specfleet_evaluations_total", outcome="no-op", trigger="weekly") == 1
    count = "specfleet_stage_duration_seconds_count"
    assert value(text, count, stage="verify", outcome="ok") == 3


def test_web_route_answers_metrics_without_a_redirect(engine: Engine) -> None:
    """Added as a route to a FastAPI app, /metrics answers 200 with the exposition itself."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    add_rows(engine)
    web = FastAPI()
    web.add_route("/metrics", metrics_asgi_app(engine))
    with TestClient(web) as client:
        response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value(response.text, "specfleet_merge_requests", state="open") == 2
