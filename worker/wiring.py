"""Which backends run, decided from settings: the only place that does.

Workers (``worker/tasks.py``) and commands (``specfleet/cli/common.py``) get their adapters here:
the database engine, the forge per product, the index client, the advisory source, the LLM
planner and the verifier's caches (:func:`pipeline_deps`). Imports of the heavy parts (the
pipeline, the verifier, the agent) happen inside the functions that need them, so a command
asking only for an advisory source stays quick to start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from specfleet.core.errors import ConfigurationError
from specfleet.core.settings import Settings

if TYPE_CHECKING:
    # the backends are imported where they are built: `specfleet health` needs no database
    # layer, and a worker pays for each backend once
    from sqlalchemy import Engine

    from specfleet.core.db import Product
    from specfleet.core.forges.interface import Forge
    from specfleet.core.health.advisories import Advisory, AdvisorySource, PackageVersion
    from specfleet.core.health.releases import FactsCache, IndexClient
    from specfleet.worker.pipeline.deps import PipelineDeps


def pipeline_deps(settings: Settings, engine: Engine | None = None) -> PipelineDeps:
    """Everything the pipeline needs, built once per worker process."""
    from specfleet.core.db import ensure_schema, make_engine
    from specfleet.core.git import MirrorCache
    from specfleet.worker.pipeline.deps import PipelineDeps
    from specfleet.worker.pipeline.llm_plan import LLMPlanning
    from specfleet.worker.verify.environments import EnvironmentCache
    from specfleet.worker.verify.results import SideResultCache

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
        lease_seconds=settings.lease_seconds,
    )


def index_client(settings: Settings, url: str | None = None) -> IndexClient:
    """Release facts from the package index, cached in Redis in fleet mode, else on disk."""
    from specfleet.core.health.releases import DiskFactsCache, IndexClient, RedisFactsCache

    cache: FactsCache
    if settings.redis_url:
        import redis

        cache = RedisFactsCache(redis.Redis.from_url(settings.redis_url))
    else:
        cache = DiskFactsCache(settings.cache_dir / "index")
    return IndexClient(
        url or settings.index_url, cache=cache, ttl_seconds=settings.index_cache_hours * 3600
    )


def advisory_source(
    settings: Settings,
    directory: Path | None = None,
    pip_audit: bool = False,
    osv_url: str | None = None,
    refreshing: bool = True,
) -> AdvisorySource:
    """The configured advisory source; explicit arguments (a command's options) win.

    ``refreshing``: a long-lived worker re-reads an advisory directory every few minutes; a
    command reads it once.
    """
    from specfleet.core.health.advisories import OsvDirectory, PipAuditSource

    if pip_audit or (directory is None and settings.advisory_source == "pip-audit"):
        return PipAuditSource(
            osv_url=osv_url or settings.osv_url, cache_dir=settings.cache_dir / "pip-audit"
        )
    chosen = directory or settings.advisory_dir
    if chosen is None:
        raise ConfigurationError(
            "no advisory source: set SPECFLEET_ADVISORY_DIR to an OSV advisory directory "
            "(examples/advisories for the examples; a command also takes --advisories DIR) "
            "or SPECFLEET_ADVISORY_SOURCE=pip-audit (--pip-audit)"
        )
    parsed = settings.cache_dir / "osv"  # parsed records as JSON, keyed by path, size, mtime
    if refreshing:
        return RefreshingAdvisories(lambda: OsvDirectory(chosen, cache_dir=parsed))
    return OsvDirectory(chosen, cache_dir=parsed)


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
    from specfleet.core.forges import forge_named

    return forge_named(name, settings, engine)
