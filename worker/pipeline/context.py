"""What one evaluation carries from stage to stage, and how a stage says "this is the end".

Each stage (``worker/pipeline/stages.py``) is a small function over one
:class:`EvaluationContext`: it reads what earlier stages filled in, records itself in the
context's :class:`StageLog`, fills in its own part, and returns either ``None`` (go on) or an
:class:`Ending` (the outcome to record). No stage raises to stop the pipeline; only the
infrastructure errors a task retries (database, forge) escape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from specfleet.core.db import Evaluation, Product
from specfleet.core.db.ledger import Outcome
from specfleet.core.spec import Spec
from specfleet.policies.model import Rule
from specfleet.policies.store import PolicySet
from specfleet.worker.pipeline.amend import AmendedSpec
from specfleet.worker.pipeline.apply import Candidate
from specfleet.worker.pipeline.assess import Assessment
from specfleet.worker.pipeline.deps import PipelineDeps
from specfleet.worker.pipeline.fingerprint import PreviousEvaluation
from specfleet.worker.pipeline.plan import Plan
from specfleet.worker.pipeline.record import StageLog
from specfleet.worker.verify.gate import Verdict

Summary = dict[str, object]
"""An evaluation's summary: JSON values only (stored on its row)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Ending:
    """How the evaluation ends: its outcome, the summary to keep, the key it answers for."""

    outcome: Outcome
    summary: Mapping[str, object]
    error: str | None = None
    # the (product, window, fingerprint) key this outcome answers for; None claims none
    fingerprint: str | None = None


@dataclass
class EvaluationContext:
    """One delivery of one evaluation, filled in stage by stage."""

    deps: PipelineDeps
    evaluation: Evaluation  # detached: id, product, window, trigger as queued
    product: Product
    previous: PreviousEvaluation | None  # the last evaluation that answered (no-op check)
    policy_version: int | None
    owner: str  # the lease this delivery holds (specfleet.core.db.ledger)
    stages: StageLog
    facts: Summary = field(default_factory=dict)  # what the summary says whatever the end
    scratch: Path | None = None
    # fetch
    tip: str | None = None
    policies: PolicySet | None = None
    # fingerprint
    partial_inputs: dict[str, str] = field(default_factory=dict)  # every digest but facts
    # load-spec
    mirror: Path | None = None
    spec: Spec | None = None
    spec_bytes: bytes = b""
    # assess
    baseline: Path | None = None
    before: Assessment | None = None
    fingerprint: str | None = None
    # plan
    now: dt.datetime | None = None
    rules: tuple[Rule, ...] = ()
    plan: Plan | None = None
    # produce (and verify)
    amended: AmendedSpec | None = None
    candidate: Candidate | None = None
    verdict: Verdict | None = None
    report: str = ""

    @property
    def evaluation_id(self) -> int:
        return self.evaluation.id or 0

    @property
    def amending(self) -> bool:
        return self.evaluation.trigger == "amendment"

    def ending(
        self,
        outcome: Outcome,
        summary: Mapping[str, object],
        error: str | None = None,
        keyed: bool = True,
    ) -> Ending:
        """An ending answering for this evaluation's fingerprint (unless ``keyed`` is False)."""
        return Ending(outcome, summary, error, self.fingerprint if keyed else None)


def need(value: T | None, what: str) -> T:
    """A value an earlier stage must have filled in (a wiring bug otherwise, never input)."""
    if value is None:
        raise RuntimeError(f"pipeline stage ran before {what} was known")
    return value


Stage = Callable[[EvaluationContext], Ending | None]
"""A stage: None to go on, or the evaluation's ending."""
