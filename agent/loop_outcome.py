"""How the planning loop turns what it tried into a :class:`LoopOutcome`: the running tally
of calls and attempts, the candidates it verified, and the outcome each ending produces.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from specfleet.agent.budget import CallRecord
from specfleet.agent.deterministic import DeterministicChange
from specfleet.agent.guards import append_amendment, spec_problem
from specfleet.agent.loop_model import Check, LoopOutcome, Outcome, PlanRequest, Source
from specfleet.agent.plan import Plan
from specfleet.agent.tree_diff import changed_files, unified_diff


@dataclass
class Tally:
    """Every call made and every attempt tried so far, in order."""

    calls: list[CallRecord] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    llm_failure: str = ""


@dataclass(frozen=True)
class Candidate:
    """One verified candidate directory; ``plan`` is None for the deterministic change."""

    directory: Path
    check: Check
    plan: Plan | None
    files: tuple[str, ...]
    raw: str | None
    order: int


def deterministic_candidate(
    request: PlanRequest,
    base: Path,
    workspace: Path,
    deterministic: DeterministicChange,
    verify: Callable[[Path], Check],
    tally: Tally,
) -> Candidate:
    """The deterministic change alone (with its amendment, when it has one), verified."""
    directory = workspace / "deterministic"
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(base, directory, symlinks=True)
    if deterministic.amendment is not None:
        spec_file = directory / request.guard.spec_path
        old = spec_file.read_text(encoding="utf-8")
        new = append_amendment(old, deterministic.amendment, request.guard.today)
        problem = spec_problem(old, new)
        if problem is None:
            spec_file.write_text(new, encoding="utf-8")
        else:
            tally.tried.append(f"the deterministic amendment was not appended: {problem}")
    check = verify(directory)
    status = "green" if check.publishable else "not publishable"
    tally.tried.append(f"deterministic change ({deterministic.summary}): verification {status}")
    return Candidate(directory, check, None, (), None, 0)


def decide_deterministic(
    request: PlanRequest,
    baseline: Path,
    candidate: Candidate | None,
    tally: Tally,
    deterministic: DeterministicChange,
    rounds: int,
) -> LoopOutcome:
    if candidate is not None and candidate.check.publishable:
        return proposed(request, baseline, candidate, tally, rounds, deterministic)
    reasons = ("the deterministic change did not pass verification",)
    outcome = finish("needs-human", request, baseline, None, tally, rounds, reasons)
    return replace(outcome, check=candidate.check if candidate else None)


def proposed(
    request: PlanRequest,
    baseline: Path,
    candidate: Candidate,
    tally: Tally,
    rounds: int,
    deterministic: DeterministicChange | None,
) -> LoopOutcome:
    files = changed_files(baseline, candidate.directory)
    plan = candidate.plan
    if plan is not None:
        source: Source = "llm"
        summary, amendment, rationale = plan.summary, plan.amendment, tuple(plan.rationale)
        if deterministic is not None and not deterministic.empty:
            rationale = (*deterministic.rationale, *rationale)
    else:
        assert deterministic is not None
        source = "deterministic"
        summary, amendment = deterministic.summary, deterministic.amendment
        rationale = deterministic.rationale
    outcome = finish(
        "proposed",
        request,
        baseline,
        candidate.directory,
        tally,
        rounds,
        ("a candidate passed verification",),
        files=files,
        source=source,
    )
    return replace(
        outcome,
        summary=summary,
        amendment=amendment,
        rationale=rationale,
        check=candidate.check,
        diff=unified_diff(baseline, candidate.directory, files),
    )


def finish(
    outcome: Outcome,
    request: PlanRequest,
    baseline: Path,
    candidate: Path | None,
    tally: Tally,
    rounds: int,
    reasons: tuple[str, ...],
    *,
    files: tuple[str, ...] = (),
    source: Source = "none",
) -> LoopOutcome:
    calls = tally.calls
    return LoopOutcome(
        outcome=outcome,
        candidate=candidate,
        files_changed=files,
        diff="",
        summary="",
        amendment=None,
        rationale=(),
        rounds=rounds,
        calls=len(calls),
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        cached_prompt_tokens=sum(c.cached_prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        cost_usd=round(sum(c.cost_usd for c in calls), 6),
        reasons=reasons,
        tried=tuple(tally.tried),
        check=None,
        source=source,
        llm_failure=tally.llm_failure,
    )
