"""Moved to :mod:`worker.wiring` (one wiring for workers and commands); kept for imports."""

from specfleet.worker.wiring import (
    RefreshingAdvisories,
    advisory_source,
    index_client,
    pipeline_deps,
)

__all__ = ["RefreshingAdvisories", "advisory_source", "index_client", "pipeline_deps"]
