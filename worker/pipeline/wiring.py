"""Which backends a worker's pipeline uses, decided from settings (the only place that does)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Engine

from core.db import Product, ensure_schema, make_engine
from core.errors import ConfigurationError
from core.forges import forge_named
from core.forges.interface import Forge
from core.git import MirrorCache
from core.health.advisories import (
    Advisory,
    AdvisorySource,
    OsvDirectory,
    PackageVersion,
    PipAuditSource,
)
from core.health.releases import DiskFactsCache, FactsCache, IndexClient, RedisFactsCache
from core.settings import Settings
from worker.pipeline.deps import PipelineDeps
from worker.pipeline.llm_plan import LLMPlanning
from worker.verify.environments import EnvironmentCache
from worker.verify.results import SideResultCache


def pipeline_deps(settings: Settings, engine: Engine | None = None) -> PipelineDeps:
    """Everything the pipeline needs, built once per worker process."""
    if engine is None:
        engine = make_engine(settings.resolved_database_url)
        ensure_schema(engine)
    forges: dict[str, Forge] = {}

    def forge_for(product: Product) -> Forge:
        name = product.forge or "local"
        if name not in forges:
            forges[name] = _forge(name, settings, engine)
        return forges[name]

    return PipelineDeps(
        engine=engine,
        mirrors=MirrorCache(settings.mirrors_dir, settings.git_timeout_seconds),
        index=index_client(settings),
        advisories=advisory_source(settings),
        forge_for=forge_for,
        environments=EnvironmentCache(settings.cache_dir / "environments"),
        results=SideResultCache(settings.cache_dir / "verifications"),
        work_dir=settings.home / "work",
        # None without SPECFLEET_LLM_BASE_URL: the deterministic remediators alone
        planner=LLMPlanning.from_settings(settings, engine),
    )


def index_client(settings: Settings) -> IndexClient:
    cache: FactsCache
    if settings.redis_url:
        import redis

        cache = RedisFactsCache(redis.Redis.from_url(settings.redis_url))
    else:
        cache = DiskFactsCache(settings.cache_dir / "index")
    return IndexClient(
        settings.index_url, cache=cache, ttl_seconds=settings.index_cache_hours * 3600
    )


def advisory_source(settings: Settings) -> AdvisorySource:
    if settings.advisory_source == "pip-audit":
        return PipAuditSource(osv_url=settings.osv_url, cache_dir=settings.cache_dir / "pip-audit")
    directory = settings.advisory_dir
    if directory is None:
        raise ConfigurationError(
            "no advisory source for evaluations: set SPECFLEET_ADVISORY_DIR to an OSV advisory "
            "directory (examples/advisories for the examples) or SPECFLEET_ADVISORY_SOURCE="
            "pip-audit"
        )
    return RefreshingAdvisories(lambda: OsvDirectory(directory))


class RefreshingAdvisories:
    """An advisory source re-read every ``ttl_seconds``.

    An :class:`OsvDirectory` caches what it parsed for its lifetime; a worker lives for weeks
    while its directory is updated (a ``git pull`` of the advisory database), and a stale
    source would make the weekly no-op check miss a new advisory. Re-reading every few
    minutes costs a few parses per package, once.
    """

    def __init__(self, make: Callable[[], AdvisorySource], ttl_seconds: float = 600) -> None:
        self._make = make
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._source = make()
        self._born = time.monotonic()
        self.name = self._source.name

    def advisories_for(
        self, packages: Sequence[PackageVersion]
    ) -> Mapping[PackageVersion, Sequence[Advisory]]:
        with self._lock:
            if time.monotonic() - self._born > self._ttl:
                self._source, self._born = self._make(), time.monotonic()
            source = self._source
        return source.advisories_for(packages)


def _forge(name: str, settings: Settings, engine: Engine) -> Forge:
    return forge_named(name, settings, engine)
