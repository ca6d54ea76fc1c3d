"""The planning loop's values: what the worker asks (:class:`PlanRequest`), what a verifier
says of a candidate (:class:`Check`), the planner it talks to, and what the loop decides
(:class:`LoopOutcome`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from specfleet.agent.context import ContextInputs
from specfleet.agent.guards import GuardContext
from specfleet.agent.llm import Message, PlannerReply
from specfleet.agent.plan import AmendmentDraft, Rationale

Outcome = Literal["proposed", "no-change", "needs-human"]
Source = Literal["llm", "deterministic", "none"]


@dataclass(frozen=True)
class Check:
    """What the verifier says of one candidate directory."""

    publishable: bool
    feedback: str  # failing tests, contract/data diffs, new findings: text for the model
    score: tuple[float | int | str, ...] = ()  # lower is better; orders green candidates
    detail: object = None  # the worker's Verdict, carried through untouched


class Planner(Protocol):
    @property
    def model(self) -> str: ...

    def plan(
        self,
        messages: Sequence[Message],
        *,
        product_id: str,
        window: str,
        purpose: str,
        evaluation_id: int | None = None,
    ) -> PlannerReply: ...


@dataclass(frozen=True)
class PlanRequest:
    product_id: str
    window: str
    context: ContextInputs  # its ``repo`` is replaced by the loop's base directory
    guard: GuardContext = field(default_factory=GuardContext)
    max_rounds: int = 3
    candidates: int = 1
    evaluation_id: int | None = None


@dataclass(frozen=True)
class LoopOutcome:
    outcome: Outcome
    candidate: Path | None  # the chosen candidate directory (proposed only)
    files_changed: tuple[str, ...]
    diff: str
    summary: str
    amendment: AmendmentDraft | None
    rationale: tuple[Rationale, ...]
    rounds: int
    calls: int
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    reasons: tuple[str, ...]  # why this outcome
    tried: tuple[str, ...]  # every attempt, in order
    check: Check | None
    source: Source
    # why the LLM path failed (timeout, endpoint error), so a deterministic fallback says so
    llm_failure: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
