"""What the pipeline needs from the outside world, passed in as one value.

Entry points build it (``specfleet.worker.wiring.pipeline_deps`` from settings; tests build
their own), so no stage decides which backend runs (DESIGN.md section 9.5).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine

from specfleet.core.db import Product
from specfleet.core.forges.interface import Forge
from specfleet.core.git import MirrorCache
from specfleet.core.health.advisories import AdvisorySource
from specfleet.core.health.releases import IndexClient
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.results import SideResultCache

if TYPE_CHECKING:
    from specfleet.policies.store import PolicySet
    from specfleet.worker.pipeline.llm_plan import LLMPlanning


class Planner(Protocol):
    """The LLM planner as the pipeline sees it (``specfleet.agent.loop`` slots in behind this)."""

    @property
    def identity(self) -> str:
        """Model and prompt version: part of every fingerprint, so a new model re-evaluates."""
        ...


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class PipelineDeps:
    """Collaborators of one worker process; built once and shared by its evaluations."""

    engine: Engine
    mirrors: MirrorCache
    index: IndexClient
    advisories: AdvisorySource
    forge_for: Callable[[Product], Forge]
    environments: EnvironmentCache
    work_dir: Path
    results: SideResultCache | None = None  # reuse a side's evidence within a window
    planner: LLMPlanning | None = None  # None: deterministic remediators only
    clock: Callable[[], dt.datetime] = utc_now
    lease_seconds: float = 120.0  # an evaluation claimed in-process (core.db.ledger.claim)
    # policy sets are immutable: each version is loaded once per process
    policy_cache: dict[int, PolicySet] = field(default_factory=dict)

    @property
    def planner_identity(self) -> str:
        return self.planner.identity if self.planner is not None else "deterministic-v1"
