"""Prometheus metrics for the fleet: every metric specfleet exports is defined here.

Two kinds of metric live side by side:

* **process metrics**, counted where the work happens (a worker running a stage, the agent
  calling the LLM, a forge adapter failing): ``evaluations_total``, ``stage_duration_seconds``,
  ``llm_tokens_total``, ``llm_cost_usd_total``, ``llm_calls_total``, ``forge_api_errors_total``.
  Call sites use the ``count_*``/``observe_*`` functions below, which never raise: a metric
  must not be the reason an evaluation fails.
* **fleet gauges**, read from the database (and the broker) when Prometheus scrapes, so any
  number of processes agree on one truth: ``queue_depth``, ``evaluations`` by status and
  outcome, ``merge_requests`` by state. :class:`FleetCollector` computes them; only the web
  process serves it (``metrics_asgi_app``), so a fleet of workers does not export the same
  gauge N times.

Workers serve their process metrics on a port of their own (``start_worker_metrics_server``).
Celery's default prefork pool runs tasks in child processes whose counters the parent cannot
see; set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory before the worker starts
(the deploy files do) and the server aggregates every child's counters from there, or run
workers with ``--pool threads``/``--pool solo`` where one process holds everything.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    make_asgi_app,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, func, select

from specfleet.core.db.engine import session_scope
from specfleet.core.db.tables import Evaluation, MergeRequest

PREFIX = "specfleet"
# Label values come from callers; bounding them keeps one odd value from becoming a new series
# per evaluation (Prometheus keeps every label combination it ever saw).
MAX_LABEL_LENGTH = 40
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
TOKEN_KINDS = ("prompt", "cached_prompt", "completion")

EVALUATIONS = Counter(
    f"{PREFIX}_evaluations_total",
    "Evaluations finished, by outcome (published, no-op, needs-human, failed ...) and trigger.",
    ["outcome", "trigger"],
)
STAGE_DURATION = Histogram(
    f"{PREFIX}_stage_duration_seconds",
    "Time one pipeline stage took (fetch, load, assess, plan, apply, verify, publish ...).",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
LLM_CALLS = Counter(
    f"{PREFIX}_llm_calls_total",
    "Requests to the LLM endpoint, by purpose and outcome.",
    ["purpose", "outcome"],
)
LLM_TOKENS = Counter(
    f"{PREFIX}_llm_tokens_total",
    "LLM tokens used, by kind: prompt, cached_prompt (part of prompt) and completion.",
    ["kind"],
)
LLM_COST = Counter(
    f"{PREFIX}_llm_cost_usd_total", "Estimated LLM cost in US dollars (settings' price table)."
)
FORGE_ERRORS = Counter(
    f"{PREFIX}_forge_api_errors_total",
    "Forge API requests that failed, by forge and kind (rate-limited, server, timeout ...).",
    ["forge", "kind"],
)

_children_lock = threading.Lock()


def _label(value: object, default: str = "unknown") -> str:
    text = str(value).strip() if value is not None else ""
    return (text or default)[:MAX_LABEL_LENGTH]


def observe_stage(stage: str, seconds: float, outcome: str | None = None) -> None:
    """Record how long a pipeline stage took and how it ended; never raises."""
    with contextlib.suppress(TypeError, ValueError):
        STAGE_DURATION.labels(stage=_label(stage), outcome=_label(outcome, "ok")).observe(
            max(0.0, float(seconds))
        )


def count_evaluation(outcome: str | None, trigger: str | None = None) -> None:
    """Count one finished evaluation by its outcome and trigger; never raises."""
    EVALUATIONS.labels(outcome=_label(outcome), trigger=_label(trigger)).inc()


def count_llm_call(
    purpose: str | None = "plan",
    outcome: str | None = "ok",
    prompt_tokens: int | None = 0,
    completion_tokens: int | None = 0,
    cached_prompt_tokens: int | None = 0,
    cost_usd: float | None = 0.0,
) -> None:
    """Count one LLM request, its tokens and its estimated cost; never raises."""
    LLM_CALLS.labels(purpose=_label(purpose), outcome=_label(outcome, "ok")).inc()
    for kind, amount in zip(
        TOKEN_KINDS, (prompt_tokens, cached_prompt_tokens, completion_tokens), strict=True
    ):
        _add(LLM_TOKENS.labels(kind=kind), amount)
    _add(LLM_COST, cost_usd)


def count_forge_error(forge: str | None, kind: str | None) -> None:
    """Count one failed forge API request (e.g. forge="gitlab", kind="rate-limited")."""
    FORGE_ERRORS.labels(forge=_label(forge), kind=_label(kind)).inc()


def _add(counter: Any, amount: float | int | None) -> None:
    try:
        value = float(amount or 0)
    except (TypeError, ValueError):
        return
    # counters only go up; a negative or NaN figure from a provider is not worth a crash
    if value > 0:
        counter.inc(value)


# --- fleet gauges, read on scrape ---------------------------------------------------------

BrokerDepth = Callable[[], int | None]


class FleetCollector(Collector):
    """Gauges computed from the database (and the broker) each time Prometheus scrapes."""

    def __init__(
        self,
        engine: Engine,
        broker_depth: BrokerDepth | None = None,
        workers_seen: BrokerDepth | None = None,
    ) -> None:
        self.engine = engine
        self.broker_depth = broker_depth
        self.workers_seen = workers_seen

    def describe(self) -> Iterable[Metric]:
        # empty on purpose: describing would make the registry collect (query) at register time
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_database_up", "1 when the last scrape could read the database, else 0."
        )
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Evaluations waiting for a worker: queued rows (database) and messages (broker).",
            labels=["source"],
        )
        evaluations = GaugeMetricFamily(
            f"{PREFIX}_evaluations",
            "Evaluation rows by status (queued, running, done ...) and outcome.",
            labels=["status", "outcome"],
        )
        merge_requests = GaugeMetricFamily(
            f"{PREFIX}_merge_requests",
            "Merge requests specfleet opened, by state (open, merged, closed).",
            labels=["state"],
        )
        try:
            by_status, by_state = self._read_database()
        except SQLAlchemyError:
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            queued = 0
            for (status, outcome), count in sorted(by_status.items()):
                evaluations.add_metric([status, outcome], count)
                if status == "queued":
                    queued += count
            depth.add_metric(["database"], queued)
            for state, count in sorted(by_state.items()):
                merge_requests.add_metric([state], count)
        if self.broker_depth is not None:
            try:
                broker = self.broker_depth()
            except Exception:  # an unreachable broker is a missing sample, not a failed scrape
                broker = None
            if broker is not None:
                depth.add_metric(["broker"], broker)
        yield from (up, depth, evaluations, merge_requests)
        yield from self._state_gauges()

    def _state_gauges(self) -> Iterator[Metric]:
        """Queue ages, expired leases and workers seen (core.fleetstate); no sample on error."""
        from specfleet.core.fleetstate import read_fleet_state

        try:
            state = read_fleet_state(self.engine, workers_seen=self.workers_seen)
        except SQLAlchemyError:
            return
        figures = (
            ("oldest_queued_age_seconds", "Age of the oldest queued evaluation (since sent).",
             state.oldest_queued_seconds or 0.0),
            ("oldest_running_age_seconds", "Age of the oldest running evaluation (since claimed).",
             state.oldest_running_seconds or 0.0),
            ("leases_expired", "Running evaluations whose lease expired (their worker died).",
             state.leases_expired),
            ("workers_seen", "Workers that announced themselves within the last minute.",
             state.workers_seen),
        )  # fmt: skip
        for name, description, value in figures:
            if value is None:
                continue
            gauge = GaugeMetricFamily(f"{PREFIX}_{name}", description)
            gauge.add_metric([], float(value))
            yield gauge

    def _read_database(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        with session_scope(self.engine) as session:
            status_rows = session.exec(
                select(Evaluation.status, Evaluation.outcome, func.count()).group_by(
                    col(Evaluation.status), col(Evaluation.outcome)
                )
            ).all()
            state_rows = session.exec(
                select(MergeRequest.state, func.count()).group_by(col(MergeRequest.state))
            ).all()
        by_status: dict[tuple[str, str], int] = {}
        for status, outcome, count in status_rows:
            key = (str(status), str(outcome) if outcome else "none")
            by_status[key] = by_status.get(key, 0) + int(count)
        return by_status, {str(state): int(count) for state, count in state_rows}


def redis_queue_depth(redis_url: str, queue: str = "specfleet") -> BrokerDepth:
    """Messages waiting in a Celery queue on Redis (every priority sub-queue counted)."""

    def depth() -> int:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            # kombu keeps priorities 3, 6 and 9 in sibling lists named queue\x06\x16<priority>
            keys = [queue] + [f"{queue}\x06\x16{priority}" for priority in (3, 6, 9)]
            return sum(int(client.llen(key)) for key in keys)
        finally:
            client.close()

    return depth


class _Union(Collector):
    """Several sources served as one registry (process metrics plus fleet gauges)."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def process_registry() -> CollectorRegistry:
    """This process's counters, aggregated over every prefork child in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def fleet_registry(
    engine: Engine,
    broker_depth: BrokerDepth | None = None,
    workers_seen: BrokerDepth | None = None,
) -> CollectorRegistry:
    """The web process's registry: its own process metrics plus the fleet gauges."""
    registry = CollectorRegistry(auto_describe=False)
    collector = FleetCollector(engine, broker_depth, workers_seen)
    registry.register(_Union(process_registry(), collector))
    return registry


class MetricsApp:
    """An ASGI app answering every request with one scrape of ``registry``.

    Being a callable object rather than a function, Starlette and FastAPI take it as a plain
    ASGI endpoint: ``app.add_route("/metrics", metrics_asgi_app(engine))`` answers ``/metrics``
    itself (a ``mount`` would redirect it to ``/metrics/`` first).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._app = make_asgi_app(registry=registry)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def metrics_asgi_app(
    engine: Engine,
    broker_depth: BrokerDepth | None = None,
    workers_seen: BrokerDepth | None = None,
) -> MetricsApp:
    """The web process's /metrics endpoint: process counters plus the fleet gauges."""
    return MetricsApp(fleet_registry(engine, broker_depth, workers_seen))


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """(body, content type) of one scrape, for frameworks that prefer a plain route."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def start_worker_metrics_server(port: int, address: str = "127.0.0.1") -> None:
    """Serve this worker's process metrics on ``address:port`` (a daemon thread).

    Loopback by default (``SPECFLEET_METRICS_HOST``): metrics name products and failure
    kinds, and a scraper in the same pod or host needs nothing more.

    Call it once in the worker's main process, before the pool forks. In multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set) every pool child writes its samples to that directory
    and this server adds them up; call :func:`mark_process_dead` when a child exits.
    """
    start_http_server(port, addr=address, registry=process_registry())


def mark_process_dead(pid: int) -> None:
    """Drop a finished pool child's live gauges (multiprocess mode; a no-op otherwise)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    with _children_lock:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
