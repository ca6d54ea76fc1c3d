"""Stages 5-7 with an LLM configured: the agent's plan-verify-repair loop on the pipeline's gate.

Without an LLM the pipeline plans with the deterministic remediators, applies and verifies once
(``plan.py``, ``apply.py``, ``verification.py``). With one, :func:`agent.loop.run_loop` takes
the remediators' change as its starting point, asks the model for the best implementation of
the unchanged spec under today's policies, guards every edit, and verifies each candidate with
the same gate a deterministic candidate passes (build and tests, contract, data, failure
modes, policy re-scan); failures are fed back for a bounded number of rounds within the
product's budget. The chosen candidate directory is then committed like any other candidate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from specfleet.agent.amend import implement_task
from specfleet.agent.budget import Budget, DatabaseRecorder
from specfleet.agent.context import ContextInputs
from specfleet.agent.deterministic import DeterministicChange, deterministic_from_dependencies
from specfleet.agent.guards import GuardContext
from specfleet.agent.llm import LLMPlanner
from specfleet.agent.loop import run_loop
from specfleet.agent.loop_model import Check, LoopOutcome, PlanRequest
from specfleet.agent.plan import Rationale
from specfleet.core.errors import SpecInvalid
from specfleet.core.settings import Settings
from specfleet.core.spec import Spec, load_spec
from specfleet.policies.model import Rule
from specfleet.policies.store import PolicySet
from specfleet.worker.pipeline.amend import AmendedSpec
from specfleet.worker.pipeline.apply import (
    Candidate,
    DependencyChange,
    _git,
    candidate_repository,
    dependency_changes,
    proposal_key,
)
from specfleet.worker.pipeline.assess import Assessment, assess_checkout
from specfleet.worker.pipeline.deps import PipelineDeps
from specfleet.worker.pipeline.plan import LLMUsage, Plan
from specfleet.worker.verify.gate import Verdict, verify

MAX_FEEDBACK = 12_000
# What the LLM is told lives in these: the prompt files shipped with the agent and the modules
# that assemble the planning and drafting prompts. Their digest enters every fingerprint, so an
# edited prompt re-evaluates the fleet without anyone remembering to bump a version string.
PROMPT_SOURCES = ("specfleet.agent.prompts", "specfleet.agent.context", "specfleet.agent.amend")


@lru_cache(maxsize=1)
def prompt_digest() -> str:
    """A digest of the prompt templates (files and assembling code), 16 hex digits."""
    digest = hashlib.sha256()
    for name in PROMPT_SOURCES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"the prompt module {name} is not installed")
        origin = Path(spec.origin)
        paths = (
            sorted(
                p
                for p in origin.parent.iterdir()
                if p.is_file() and p.suffix in (".py", ".md", ".txt")
            )
            if origin.name == "__init__.py"
            else [origin]
        )
        for path in paths:
            digest.update(f"{name}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class LLMPlanning:
    """The pipeline's planner when an endpoint is configured (``deps.planner``)."""

    planner: LLMPlanner
    budget: Budget
    engine: Engine
    max_rounds: int = 3
    candidates: int = 1
    known_secrets: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        return f"llm:{self.planner.model}:prompts-{prompt_digest()}"

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> LLMPlanning | None:
        planner = LLMPlanner.from_settings(settings)
        if planner is None:
            return None
        return cls(
            planner,
            Budget.from_settings(settings),
            engine,
            settings.agent_max_rounds,
            settings.agent_candidates,
            tuple(settings.secret_values()),
        )


@dataclass(frozen=True)
class LoopResult:
    outcome: LoopOutcome
    verdict: Verdict | None


def plan_with_llm(
    *,
    planning: LLMPlanning,
    deps: PipelineDeps,
    evaluation_id: int,
    window: str,
    spec: Spec,
    spec_path: str,
    baseline: Path,
    baseline_commit: str,
    before: Assessment,
    plan: Plan,
    policies: PolicySet | None,
    rules: tuple[Rule, ...],
    new_rule_ids: frozenset[str],
    now: dt.datetime,
    day: dt.date,
    workspace: Path,
    amendment: AmendedSpec | None = None,
) -> LoopResult:
    """Run the loop; the outcome's candidate directory is what to commit when ``proposed``.

    With ``amendment`` the loop implements the amended spec: its base already holds the
    amended spec file (the model sees the amended spec and may not change it further), and
    verification asks every test the requirements name to pass and lets only the columns the
    amendment explicitly changes differ in existing rows.
    """
    python = spec.implementation.runtime.removeprefix("python")
    deterministic: DeterministicChange | None
    if amendment is not None:
        deterministic = _spec_change(amendment, spec_path)
    elif plan.dependencies.empty:
        deterministic = None
    else:
        deterministic = deterministic_from_dependencies(plan.dependencies, before.pinset, python)
    shown_spec = amendment.spec if amendment is not None else spec
    request = PlanRequest(
        product_id=spec.id,
        window=window,
        context=ContextInputs(
            spec=shown_spec,
            repo=baseline,
            rules=policies.rules if policies else (),
            policy_version=policies.version if policies else None,
            semgrep_files=dict(policies.semgrep_files) if policies else {},
            applicable_rule_ids=frozenset(rule.id for rule in rules),
            new_rule_ids=new_rule_ids,
            health=before.health,
            findings=tuple(before.findings),
            known_secrets=planning.known_secrets,
            spec_path=spec_path,
            task=implement_task(amendment.checked, amendment.ask) if amendment else None,
            also_show=amendment.new_test_files if amendment else (),
        ),
        guard=GuardContext(
            spec_path=spec_path,
            known_secrets=planning.known_secrets,
            today=day,
            amendment_allowed=amendment is None,
            baseline_rules=frozenset(finding.rule_id for finding in before.findings),
        ),
        max_rounds=planning.max_rounds,
        candidates=planning.candidates,
        evaluation_id=evaluation_id,
    )

    def check(directory: Path) -> Check:
        from specfleet.worker.report import render_verdict

        try:
            candidate_spec = load_spec(directory / spec_path)
        except SpecInvalid as error:
            problems = "; ".join(p.render() for p in error.problems[:5])
            return Check(False, f"The spec no longer validates: {problems}", (99,))
        after = assess_checkout(directory, candidate_spec, spec_path, deps, policies, now)
        verdict = verify(
            candidate_spec,
            baseline,
            directory,
            deps.environments,
            baseline_commit=baseline_commit,
            baseline_spec=spec,
            findings_before=before.findings,
            findings_after=after.findings,
            allowed_data_changes=amendment.checked.data_columns if amendment else (),
            required_tests=amendment.required_tests if amendment else (),
            results=deps.results,
            window=window,
        )
        report = render_verdict(verdict)
        return Check(
            verdict.publishable,
            report[:MAX_FEEDBACK],
            (len(verdict.reasons), len(verdict.introduced), -len(verdict.resolved)),
            verdict,
        )

    outcome = run_loop(
        request,
        baseline=baseline,
        workspace=workspace,
        deterministic=deterministic,
        planner=planning.planner,
        verify=check,
        budget=planning.budget,
        recorder=DatabaseRecorder(planning.engine),
    )
    detail: Any = outcome.check.detail if outcome.check is not None else None
    return LoopResult(outcome, detail if isinstance(detail, Verdict) else None)


def _spec_change(amendment: AmendedSpec, spec_path: str) -> DeterministicChange:
    """The amended spec as the loop's starting point (never proposed without code)."""
    checked = amendment.checked

    def write(directory: Path) -> list[str]:
        (directory / spec_path).write_text(amendment.text, encoding="utf-8")
        return [spec_path]

    return DeterministicChange(
        summary=f"spec amended ({checked.amendment_id}): {amendment.ask.requirement}",
        diff=amendment.diff,
        apply=write,
        rationale=(
            Rationale(
                path=spec_path,
                why=f"amendment {checked.amendment_id} as the owner asked",
                cites=[checked.amendment_id, *checked.requirement_ids],
            ),
        ),
        fallback=False,
    )


def usage_of(outcome: LoopOutcome) -> LLMUsage:
    return LLMUsage(
        outcome.calls,
        outcome.prompt_tokens,
        outcome.completion_tokens,
        outcome.cost_usd,
        rounds=outcome.rounds,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
        path=outcome.source,
        llm_failure=outcome.llm_failure,
    )


def commit_loop_candidate(
    *,
    outcome: LoopOutcome,
    plan: Plan,
    spec: Spec,
    spec_path: str,
    scratch: Path,
    mirror: Path,
    tip: str,
    day: dt.date,
    title: str | None = None,
) -> Candidate:
    """The loop's chosen directory (edits and amendment already in it) as a commit on ``tip``."""
    assert outcome.candidate is not None
    worktree = outcome.candidate
    git_dir, env = candidate_repository(worktree, scratch, mirror, tip, day)
    tree = _git(env, "write-tree")
    key = proposal_key(tip, tree)
    spec_now = load_spec(worktree / spec_path)
    # the loop starts from the remediators' edits; a model may still revert one, and then
    # the dependency table must not claim it
    kept = tuple(
        upgrade
        for upgrade in plan.dependencies.upgrades
        if f"=={upgrade.target}" in _text(worktree / upgrade.file)
    )
    changes: tuple[DependencyChange, ...] = dependency_changes(kept)
    title = title or "specfleet: " + " ".join(outcome.summary.split())
    title = title if len(title) <= 200 else title[:199] + "…"
    why = "\n".join(f"- {r.path}: {r.why} ({', '.join(r.cites)})" for r in outcome.rationale)
    message = f"{title}\n\n{why}\n\nProposal-Key: {key}\n"
    commit = _git(env, "commit-tree", tree, "-p", tip, input_text=message)
    _git(env, "update-ref", f"refs/heads/proposal-{key[:12]}", commit)
    added = [a for a in spec_now.amendments if a.id not in {old.id for old in spec.amendments}]
    amendment_id = added[-1].id if added else spec.next_amendment_id()
    amendment_text = (
        (
            f"- id: {added[-1].id}\n  requirement: {added[-1].requirement}\n"
            f"  change: {added[-1].change}\n  why: {added[-1].why}\n"
        )
        if added
        else ""
    )
    cited = tuple(sorted({c for r in outcome.rationale for c in r.cites if "-" in c}))
    return Candidate(
        worktree,
        git_dir,
        commit,
        key,
        title,
        amendment_id,
        amendment_text,
        changes,
        cited,
        plan_summary=" ".join(outcome.summary.split()) if outcome.source == "llm" else "",
        rationale=tuple((r.path, r.why, tuple(r.cites)) for r in outcome.rationale),
    )


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
