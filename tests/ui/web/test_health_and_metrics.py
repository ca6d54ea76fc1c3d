"""The web process's probes: /healthz says whether the database answers, /metrics exposes the
fleet's gauges (queue depth, merge requests by state) read from the database on each scrape."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from specfleet.core.db import Evaluation, session_scope
from specfleet.core.metrics import observe_stage


def test_healthz_is_ok_when_the_database_answers(client: TestClient) -> None:
    """A reachable database: 200 and status ok, without signing in (probes carry no cookie)."""
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_metrics_expose_queue_depth_and_stage_timings(
    client: TestClient, engine: Engine, accounts: object
) -> None:
    """Queued evaluations show as queue depth; a recorded stage shows in the histogram."""
    from specfleet.core.db import Product

    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="/srv/orders"))
        session.flush()
        for window in ("2026-W47", "2026-W48"):
            session.add(Evaluation(product_id="orders", window=window, trigger="weekly"))
    observe_stage("verify", 1.5, "publishable")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    depth = [line for line in text.splitlines() if line.startswith("specfleet_queue_depth")]
    assert depth and any(line.rstrip().endswith(" 2.0") for line in depth), depth
    counts = [
        line
        for line in text.splitlines()
        if line.startswith("specfleet_stage_duration_seconds_count")
    ]
    assert any('stage="verify"' in line and 'outcome="publishable"' in line for line in counts)
