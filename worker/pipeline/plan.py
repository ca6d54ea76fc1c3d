"""Stage 5, plan: what should change, and why.

For now the deterministic remediators alone decide (DESIGN.md section 5: with no LLM
configured they produce the weekly merge requests); :func:`make_plan` is the one place the
LLM loop (``specfleet.agent.loop.run_loop``) will slot in when a planner is configured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from specfleet.agent.remediators.dependencies import DependencyProposal, propose
from specfleet.policies.checks.dependency import upgrade_policy
from specfleet.policies.model import Rule
from specfleet.worker.pipeline.assess import Assessment


@dataclass(frozen=True)
class LLMUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    # which path produced the proposal, the rounds it took, the prompt tokens the provider
    # served from its cache, and why the LLM path failed when a fallback was proposed instead
    rounds: int = 0
    cached_prompt_tokens: int = 0
    path: str = ""
    llm_failure: str = ""


@dataclass(frozen=True)
class Plan:
    """The change to propose (possibly nothing) and the reason when there is nothing."""

    dependencies: DependencyProposal
    reason: str
    llm: LLMUsage = LLMUsage()

    @property
    def empty(self) -> bool:
        return self.dependencies.empty


def make_plan(
    baseline: Path, assessment: Assessment, rules: Sequence[Rule], today: dt.date
) -> Plan:
    """The deterministic plan for the baseline checkout under the rules that apply."""
    proposal = propose(
        baseline,
        assessment.pinset,
        assessment.health,
        assessment.facts,
        upgrade_policy(rules),
        today,
    )
    return Plan(proposal, "" if not proposal.empty else why_nothing(proposal, assessment))


def why_nothing(proposal: DependencyProposal, assessment: Assessment) -> str:
    """Say why an empty plan is empty, naming what is left for a person or the planner."""
    parts = []
    if proposal.blocked:
        blocked = "; ".join(f"{item.package}: {item.why}" for item in proposal.blocked[:5])
        parts.append(f"no deterministic upgrade possible ({blocked})")
    failing = sorted({f.rule_id for f in assessment.findings if f.status == "fail"})
    if failing:
        parts.append("policy findings need the LLM planner or a person: " + ", ".join(failing[:10]))
    if not parts:
        if assessment.check is None:
            return "all pins healthy; no policy set is published yet"
        return "all pins healthy, no rule violated"
    return "; ".join(parts)
