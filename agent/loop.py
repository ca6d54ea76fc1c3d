"""The planning loop: plan, guard, apply to a throwaway copy, verify, feed failures back.

The worker calls :func:`run_loop` with the verifier as a callable (agent never imports
worker). Shape of the contract::

    run_loop(request, *, baseline, workspace, deterministic, planner, verify, budget, recorder)
        -> LoopOutcome

- ``baseline``: the product's checkout (never written to);
- ``workspace``: an empty directory the loop owns; ``workspace/base`` is the baseline with the
  deterministic change applied (what the model is shown), and each candidate is a fresh copy
  of it with one plan applied (``workspace/r<round>c<n>``);
- ``deterministic``: the remediators' change (:class:`DeterministicChange`) or None;
- ``planner``: an :class:`agent.llm.LLMPlanner` (anything with its ``plan`` method), or None
  when no LLM is configured: the deterministic change then goes through the gate alone;
- ``verify``: builds, tests and compares a candidate directory, returning a :class:`Check`;
- ``budget`` / ``recorder``: limits per product per window, summed from recorded calls.

Each round asks for ``request.candidates`` plans (best-of-N). Every plan passes the guard rails
before a byte is written; a rejected or unreadable plan, or a candidate the verifier refuses,
is fed back (rejected edits with reasons and nearest matches, failing tests, contract and data
diffs) for the next round, up to ``request.max_rounds``. Among green candidates the verifier's
``score`` decides (lowest first, then the earliest), so the choice is deterministic.

:class:`LoopOutcome` says ``proposed`` (a green candidate: its directory, files, diff,
amendment and rationale), ``no-change`` (why the current implementation stays), or
``needs-human`` (no green candidate within rounds and budget: ``tried`` lists every attempt),
with rounds, calls, tokens and cost either way.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from agent.budget import Budget, CallRecord, UsageRecorder
from agent.context import ContextInputs, build_prompt, estimate_tokens
from agent.guards import GuardContext, append_amendment, review_plan, spec_problem, write_staged
from agent.llm import Message, PlannerReply
from agent.plan import AmendmentDraft, Plan, Rationale
from agent.remediators.dependencies import DependencyProposal, apply_proposal
from agent.sanitise import fence, sanitise
from core.health.pins import PinSet

COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".venv")
MAX_FEEDBACK_CHARS = 12_000
Outcome = Literal["proposed", "no-change", "needs-human"]


@dataclass(frozen=True)
class Check:
    """What the verifier says of one candidate directory."""

    publishable: bool
    feedback: str  # failing tests, contract/data diffs, new findings: text for the model
    score: tuple[float | int | str, ...] = ()  # lower is better; orders green candidates
    detail: object = None  # the worker's Verdict, carried through untouched


@dataclass(frozen=True)
class DeterministicChange:
    """The remediators' proposal: a summary, its diff, and how to write it into a directory."""

    summary: str
    diff: str
    apply: Callable[[Path], Sequence[object]]
    rationale: tuple[Rationale, ...] = ()
    amendment: AmendmentDraft | None = None
    # False when the change alone cannot be the answer (an amended spec still needs code):
    # it is then the model's starting point only, never proposed by itself
    fallback: bool = True

    @property
    def empty(self) -> bool:
        return not self.diff.strip()


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
    source: Literal["llm", "deterministic", "none"]
    # why the LLM path failed (timeout, endpoint error), so a deterministic fallback says so
    llm_failure: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class _Tally:
    calls: list[CallRecord] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    llm_failure: str = ""


@dataclass(frozen=True)
class _Candidate:
    directory: Path
    check: Check
    plan: Plan | None
    files: tuple[str, ...]
    raw: str | None
    order: int


def run_loop(
    request: PlanRequest,
    *,
    baseline: Path,
    workspace: Path,
    deterministic: DeterministicChange | None,
    planner: Planner | None,
    verify: Callable[[Path], Check],
    budget: Budget,
    recorder: UsageRecorder,
) -> LoopOutcome:
    """Run plan-verify-repair rounds and say what to propose (see the module docstring)."""
    workspace.mkdir(parents=True, exist_ok=True)
    base = workspace / "base"
    if base.exists():  # a redelivered task may reuse its workspace: start from the baseline
        shutil.rmtree(base)
    shutil.copytree(baseline, base, symlinks=True, ignore=COPY_IGNORE)
    tally = _Tally()
    if not request.guard.requirement_tests:
        # the tests the spec's requirements name are never deleted, whoever built the request
        named = frozenset(
            test.split("::", 1)[0]
            for requirement in request.context.spec.requirements
            for test in requirement.tests
        )
        request = replace(request, guard=replace(request.guard, requirement_tests=named))
    has_deterministic = deterministic is not None and not deterministic.empty
    if deterministic is not None and has_deterministic:
        deterministic.apply(base)
    det_files = _changed(baseline, base)

    if planner is None:
        if not has_deterministic:
            return _finish(
                "no-change",
                request,
                baseline,
                None,
                tally,
                0,
                ("no LLM is configured and the deterministic remediators found nothing to change",),
            )
        assert deterministic is not None
        candidate = _deterministic_candidate(request, base, workspace, deterministic, verify, tally)
        return _decide_deterministic(request, baseline, candidate, tally, deterministic, 0)

    context = replace(request.context, repo=base)
    if deterministic is not None and has_deterministic:
        context = replace(
            context,
            deterministic_summary=deterministic.summary,
            deterministic_diff=deterministic.diff,
        )
    messages: list[Message] = list(build_prompt(context).messages)
    rounds = 0
    stop: str | None = None
    closest: _Candidate | None = None  # the best verified-but-refused candidate, for the report
    for round_number in range(1, request.max_rounds + 1):
        rounds = round_number
        purpose = "plan" if round_number == 1 else "repair"
        replies: list[PlannerReply] = []
        for _ in range(request.candidates):
            spent = recorder.spent(request.product_id, request.window)
            prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
            stop = budget.exhausted(spent, prompt_tokens)
            if stop:
                tally.tried.append(f"round {round_number}: not asked: {stop}")
                break
            reply = planner.plan(
                messages,
                product_id=request.product_id,
                window=request.window,
                purpose=purpose,
                evaluation_id=request.evaluation_id,
            )
            recorder.record(reply.record)
            tally.calls.append(reply.record)
            if reply.record.outcome in ("timeout", "error"):
                stop = reply.problem or "the LLM endpoint failed"
                tally.llm_failure = f"round {round_number}: {stop}"
                tally.tried.append(f"round {round_number}: {stop}")
                break
            replies.append(reply)

        checked: list[_Candidate] = []
        feedback: list[tuple[str | None, str]] = []  # (the answer, what was wrong with it)
        for index, reply in enumerate(replies, start=1):
            label = f"round {round_number}, candidate {index}"
            plan = reply.plan
            if plan is None:
                tally.tried.append(f"{label}: unusable answer: {reply.problem}")
                feedback.append(
                    (
                        reply.raw,
                        f"Your answer could not be used: {reply.problem}. "
                        "Answer with one JSON object in the plan format.",
                    )
                )
                continue
            # no_change without a reason (or with edits) is a claim the guard rails refuse below
            if plan.no_change and not plan.edits and (plan.no_change_reason or "").strip():
                why = plan.no_change_reason or ""
                if deterministic is not None and not deterministic.fallback:
                    tally.tried.append(f"{label}: no change proposed: {why}")
                    feedback.append(
                        (
                            reply.raw,
                            "The spec changed, so the implementation has to change with it; "
                            "answer with edits.",
                        )
                    )
                    continue
                if not has_deterministic:
                    tally.tried.append(f"{label}: no change: {why}")
                    return _finish(
                        "no-change",
                        request,
                        baseline,
                        None,
                        tally,
                        rounds,
                        (f"the current implementation stays: {why}",),
                    )
                assert deterministic is not None
                tally.tried.append(f"{label}: no further change; the deterministic change alone")
                candidate = _deterministic_candidate(
                    request, base, workspace, deterministic, verify, tally
                )
                return _decide_deterministic(
                    request, baseline, candidate, tally, deterministic, rounds
                )
            review = review_plan(plan, base, request.guard)
            if not review.accepted:
                tally.tried.append(
                    f"{label}: {len(review.rejected)} of {len(review.edits)} edits rejected by "
                    f"the guard rails: "
                    + "; ".join(
                        _refusal(r.index, r.kind, r.path, r.reason or "").split("\n", 1)[0]
                        for r in review.rejected
                    )
                )
                feedback.append(
                    (
                        reply.raw,
                        "Some edits were rejected; nothing was applied.\n" + review.feedback(),
                    )
                )
                continue
            directory = workspace / f"r{round_number}c{index}"
            if directory.exists():
                shutil.rmtree(directory)
            shutil.copytree(base, directory, symlinks=True)
            write_staged(directory, review.staged)
            check = verify(directory)
            files = tuple(sorted(set(det_files) | set(review.staged)))
            status = "green" if check.publishable else "not publishable"
            tally.tried.append(f"{label}: {len(plan.edits)} edits applied; verification {status}")
            checked.append(_Candidate(directory, check, plan, files, reply.raw, index))
            if not check.publishable:
                feedback.append(
                    (
                        reply.raw,
                        "The candidate was verified and is not publishable:\n"
                        + fence("verification report", _bounded(check.feedback)),
                    )
                )
        green = [c for c in checked if c.check.publishable]
        if green:
            best = min(green, key=lambda c: (c.check.score, c.order))
            return _proposed(request, baseline, best, tally, rounds, deterministic)
        failing = sorted(checked, key=lambda c: (c.check.score, c.order))
        if failing and (closest is None or failing[0].check.score <= closest.check.score):
            closest = failing[0]
        if stop:
            break
        if not feedback:
            break
        # Repair from the best failing candidate (by the verifier's score), else the first answer.
        chosen = next(
            (item for item in feedback if failing and item[0] == failing[0].raw), feedback[0]
        )
        answer, problem = chosen
        messages = [
            *messages,
            {"role": "assistant", "content": answer or "(no answer)"},
            {
                "role": "user",
                "content": sanitise(problem, request.guard.known_secrets)
                + "\n\nAnswer with a complete new plan.",
            },
        ]

    reasons = [stop] if stop else []
    if has_deterministic and deterministic is not None and deterministic.fallback:
        tally.tried.append("the deterministic change alone, as a last resort")
        candidate = _deterministic_candidate(request, base, workspace, deterministic, verify, tally)
        if candidate is not None and candidate.check.publishable:
            return _proposed(request, baseline, candidate, tally, rounds, deterministic)
    reasons.append(
        f"no candidate passed verification in {rounds} round(s)"
        if rounds and not stop
        else "no candidate passed verification"
    )
    outcome = _finish("needs-human", request, baseline, None, tally, rounds, tuple(reasons))
    # the closest candidate's verification is what a human needs to see first
    return replace(outcome, check=closest.check) if closest is not None else outcome


def _deterministic_candidate(
    request: PlanRequest,
    base: Path,
    workspace: Path,
    deterministic: DeterministicChange,
    verify: Callable[[Path], Check],
    tally: _Tally,
) -> _Candidate | None:
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
    return _Candidate(directory, check, None, (), None, 0)


def _decide_deterministic(
    request: PlanRequest,
    baseline: Path,
    candidate: _Candidate | None,
    tally: _Tally,
    deterministic: DeterministicChange,
    rounds: int,
) -> LoopOutcome:
    if candidate is not None and candidate.check.publishable:
        return _proposed(request, baseline, candidate, tally, rounds, deterministic)
    reasons = ("the deterministic change did not pass verification",)
    outcome = _finish("needs-human", request, baseline, None, tally, rounds, reasons)
    return replace(outcome, check=candidate.check if candidate else None)


def _proposed(
    request: PlanRequest,
    baseline: Path,
    candidate: _Candidate,
    tally: _Tally,
    rounds: int,
    deterministic: DeterministicChange | None,
) -> LoopOutcome:
    files = _changed(baseline, candidate.directory)
    plan = candidate.plan
    if plan is not None:
        source: Literal["llm", "deterministic", "none"] = "llm"
        summary, amendment, rationale = plan.summary, plan.amendment, tuple(plan.rationale)
        if deterministic is not None and not deterministic.empty:
            rationale = (*deterministic.rationale, *rationale)
    else:
        assert deterministic is not None
        source = "deterministic"
        summary, amendment = deterministic.summary, deterministic.amendment
        rationale = deterministic.rationale
    outcome = _finish(
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


def _finish(
    outcome: Outcome,
    request: PlanRequest,
    baseline: Path,
    candidate: Path | None,
    tally: _Tally,
    rounds: int,
    reasons: tuple[str, ...],
    *,
    files: tuple[str, ...] = (),
    source: Literal["llm", "deterministic", "none"] = "none",
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


def _refusal(index: int, kind: str, path: str, reason: str) -> str:
    """One refusal for the evaluation's record: which edit, which path, why."""
    if kind == "plan":
        return f"the plan: {reason}"
    if kind == "amend":
        return f"amendment ({path}): {reason}"
    return f"edit {index} ({kind} {path}): {reason}"


def _bounded(text: str) -> str:
    if len(text) <= MAX_FEEDBACK_CHARS:
        return text
    return text[:MAX_FEEDBACK_CHARS] + f"\n[... {len(text) - MAX_FEEDBACK_CHARS} characters cut]"


def _files(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(
            part in (".git", "__pycache__", ".pytest_cache", ".venv") for part in relative.parts
        ):
            continue
        if path.is_file() or path.is_symlink():
            found[relative.as_posix()] = path
    return found


def _changed(before: Path, after: Path) -> tuple[str, ...]:
    """Repository-relative files that differ between two trees (added, removed, changed)."""
    old, new = _files(before), _files(after)
    changed = [
        path
        for path in sorted(set(old) | set(new))
        if path not in old or path not in new or old[path].read_bytes() != new[path].read_bytes()
    ]
    return tuple(changed)


def unified_diff(before: Path, after: Path, files: Sequence[str]) -> str:
    parts: list[str] = []
    for path in files:
        old = _text(before / path)
        new = _text(after / path)
        parts.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{path}" if (before / path).exists() else "/dev/null",
                tofile=f"b/{path}" if (after / path).exists() else "/dev/null",
            )
        )
    return "".join(parts)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def deterministic_from_dependencies(
    proposal: DependencyProposal, pinset: PinSet, python_version: str
) -> DeterministicChange:
    """The dependency remediator's proposal as the loop's deterministic change."""
    moves = [f"{u.package} {u.current} → {u.target}" for u in proposal.upgrades]
    cited = sorted({reason.id for u in proposal.upgrades for reason in u.reasons})
    summary = "; ".join(moves) or "no dependency needs a change"
    why = "; ".join(
        dict.fromkeys(reason.render() for u in proposal.upgrades for reason in u.reasons)
    )
    files = sorted({u.file for u in proposal.upgrades})
    return DeterministicChange(
        summary=summary,
        diff=proposal.diff(),
        apply=lambda directory: apply_proposal(directory, pinset, proposal, python_version),
        rationale=tuple(
            Rationale(path=file, why=f"dependency upgrades: {summary}", cites=cited)
            for file in files
        ),
        amendment=AmendmentDraft(
            requirement="Keep the product's dependencies within the organisation's policies "
            "and free of known vulnerabilities.",
            change=f"Upgraded {summary}.",
            why=why or summary,
        )
        if proposal.upgrades
        else None,
    )
