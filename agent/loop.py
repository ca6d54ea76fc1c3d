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

The values live in :mod:`agent.loop_model`, the endings in :mod:`specfleet.agent.loop_outcome`; this
module is the rounds themselves, each a few named steps.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from specfleet.agent.budget import Budget, UsageRecorder
from specfleet.agent.context import build_prompt, estimate_tokens
from specfleet.agent.deterministic import DeterministicChange
from specfleet.agent.guards import review_plan, write_staged
from specfleet.agent.llm import Message, PlannerReply
from specfleet.agent.loop_model import Check, LoopOutcome, Outcome, Planner, PlanRequest
from specfleet.agent.loop_outcome import (
    Candidate,
    Tally,
    decide_deterministic,
    deterministic_candidate,
    finish,
    proposed,
)
from specfleet.agent.sanitise import fence, sanitise
from specfleet.agent.tree_diff import changed_files

COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".venv")
MAX_FEEDBACK_CHARS = 12_000

# (the answer, what was wrong with it): what a repair round is told
Feedback = tuple[str | None, str]


@dataclass(frozen=True)
class _Run:
    """What stays fixed for one run of the loop."""

    request: PlanRequest
    baseline: Path
    base: Path  # the baseline with the deterministic change applied
    workspace: Path
    deterministic: DeterministicChange | None
    verify: Callable[[Path], Check]
    deterministic_files: tuple[str, ...]
    tally: Tally = field(default_factory=Tally)

    @property
    def has_deterministic(self) -> bool:
        return self.deterministic is not None and not self.deterministic.empty

    def finish_without(self, outcome: Outcome, rounds: int, reason: str) -> LoopOutcome:
        """An ending with no candidate to propose."""
        return finish(outcome, self.request, self.baseline, None, self.tally, rounds, (reason,))

    def deterministic_alone(self, rounds: int) -> LoopOutcome:
        assert self.deterministic is not None
        candidate = deterministic_candidate(
            self.request, self.base, self.workspace, self.deterministic, self.verify, self.tally
        )
        return decide_deterministic(
            self.request, self.baseline, candidate, self.tally, self.deterministic, rounds
        )


@dataclass
class _Round:
    """What one round produced: an ending, or candidates and feedback for the next round."""

    finished: LoopOutcome | None = None
    checked: list[Candidate] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    stop: str | None = None


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
    run = _prepare(request, baseline, workspace, deterministic, verify)
    if planner is None:
        if not run.has_deterministic:
            return run.finish_without(
                "no-change",
                0,
                "no LLM is configured and the deterministic remediators found nothing to change",
            )
        return run.deterministic_alone(0)
    messages = _first_messages(run)
    rounds = 0
    stop: str | None = None
    closest: Candidate | None = None  # the best verified-but-refused candidate, for the report
    for round_number in range(1, run.request.max_rounds + 1):
        rounds = round_number
        result = _round(run, planner, messages, round_number, budget, recorder)
        stop = result.stop
        if result.finished is not None:
            return result.finished
        green = [c for c in result.checked if c.check.publishable]
        if green:
            best = min(green, key=lambda c: (c.check.score, c.order))
            return proposed(run.request, baseline, best, run.tally, rounds, deterministic)
        failing = sorted(result.checked, key=lambda c: (c.check.score, c.order))
        if failing and (closest is None or failing[0].check.score <= closest.check.score):
            closest = failing[0]
        if stop or not result.feedback:
            break
        messages = _repair_messages(run, messages, result.feedback, failing)
    return _give_up(run, rounds, stop, closest)


def _prepare(
    request: PlanRequest,
    baseline: Path,
    workspace: Path,
    deterministic: DeterministicChange | None,
    verify: Callable[[Path], Check],
) -> _Run:
    """A fresh base directory (the baseline plus the deterministic change) and the request
    with the spec's requirement tests protected."""
    workspace.mkdir(parents=True, exist_ok=True)
    base = workspace / "base"
    if base.exists():  # a redelivered task may reuse its workspace: start from the baseline
        shutil.rmtree(base)
    shutil.copytree(baseline, base, symlinks=True, ignore=COPY_IGNORE)
    if not request.guard.requirement_tests:
        # the tests the spec's requirements name are never deleted, whoever built the request
        named = frozenset(
            test.split("::", 1)[0]
            for requirement in request.context.spec.requirements
            for test in requirement.tests
        )
        request = replace(request, guard=replace(request.guard, requirement_tests=named))
    if deterministic is not None and not deterministic.empty:
        deterministic.apply(base)
    return _Run(
        request=request,
        baseline=baseline,
        base=base,
        workspace=workspace,
        deterministic=deterministic,
        verify=verify,
        deterministic_files=changed_files(baseline, base),
    )


def _first_messages(run: _Run) -> list[Message]:
    context = replace(run.request.context, repo=run.base)
    if run.deterministic is not None and run.has_deterministic:
        context = replace(
            context,
            deterministic_summary=run.deterministic.summary,
            deterministic_diff=run.deterministic.diff,
        )
    return list(build_prompt(context).messages)


def _round(
    run: _Run,
    planner: Planner,
    messages: Sequence[Message],
    round_number: int,
    budget: Budget,
    recorder: UsageRecorder,
) -> _Round:
    """Ask for the round's plans, then judge each: refused, verified, or an ending."""
    replies, stop = _ask(run, planner, messages, round_number, budget, recorder)
    result = _Round(stop=stop)
    for index, reply in enumerate(replies, start=1):
        _judge(run, reply, round_number, index, result)
        if result.finished is not None:
            break
    return result


def _ask(
    run: _Run,
    planner: Planner,
    messages: Sequence[Message],
    round_number: int,
    budget: Budget,
    recorder: UsageRecorder,
) -> tuple[list[PlannerReply], str | None]:
    """Up to ``candidates`` plans, stopping at the budget or a failing endpoint."""
    request, tally = run.request, run.tally
    purpose = "plan" if round_number == 1 else "repair"
    replies: list[PlannerReply] = []
    for _ in range(request.candidates):
        spent = recorder.spent(request.product_id, request.window)
        prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        stop = budget.exhausted(spent, prompt_tokens)
        if stop:
            tally.tried.append(f"round {round_number}: not asked: {stop}")
            return replies, stop
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
            return replies, stop
        replies.append(reply)
    return replies, None


def _judge(run: _Run, reply: PlannerReply, round_number: int, index: int, result: _Round) -> None:
    """One answer: unusable, a claim of no change, refused by the guard rails, or verified."""
    label = f"round {round_number}, candidate {index}"
    plan = reply.plan
    if plan is None:
        run.tally.tried.append(f"{label}: unusable answer: {reply.problem}")
        result.feedback.append(
            (
                reply.raw,
                f"Your answer could not be used: {reply.problem}. "
                "Answer with one JSON object in the plan format.",
            )
        )
        return
    # no_change without a reason (or with edits) is a claim the guard rails refuse below
    if plan.no_change and not plan.edits and (plan.no_change_reason or "").strip():
        _judge_no_change(run, reply, plan.no_change_reason or "", label, round_number, result)
        return
    review = review_plan(plan, run.base, run.request.guard)
    if not review.accepted:
        run.tally.tried.append(
            f"{label}: {len(review.rejected)} of {len(review.edits)} edits rejected by "
            f"the guard rails: "
            + "; ".join(
                _refusal(r.index, r.kind, r.path, r.reason or "").split("\n", 1)[0]
                for r in review.rejected
            )
        )
        result.feedback.append(
            (reply.raw, "Some edits were rejected; nothing was applied.\n" + review.feedback())
        )
        return
    directory = run.workspace / f"r{round_number}c{index}"
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(run.base, directory, symlinks=True)
    write_staged(directory, review.staged)
    check = run.verify(directory)
    files = tuple(sorted(set(run.deterministic_files) | set(review.staged)))
    status = "green" if check.publishable else "not publishable"
    run.tally.tried.append(f"{label}: {len(plan.edits)} edits applied; verification {status}")
    result.checked.append(Candidate(directory, check, plan, files, reply.raw, index))
    if not check.publishable:
        result.feedback.append(
            (
                reply.raw,
                "The candidate was verified and is not publishable:\n"
                + fence("verification report", _bounded(check.feedback)),
            )
        )


def _judge_no_change(
    run: _Run, reply: PlannerReply, why: str, label: str, rounds: int, result: _Round
) -> None:
    """The model says nothing needs to change: refused when the spec changed, an ending
    otherwise (no change, or the deterministic change alone)."""
    if run.deterministic is not None and not run.deterministic.fallback:
        run.tally.tried.append(f"{label}: no change proposed: {why}")
        result.feedback.append(
            (
                reply.raw,
                "The spec changed, so the implementation has to change with it; answer with edits.",
            )
        )
        return
    if not run.has_deterministic:
        run.tally.tried.append(f"{label}: no change: {why}")
        result.finished = run.finish_without(
            "no-change", rounds, f"the current implementation stays: {why}"
        )
        return
    run.tally.tried.append(f"{label}: no further change; the deterministic change alone")
    result.finished = run.deterministic_alone(rounds)


def _repair_messages(
    run: _Run, messages: list[Message], feedback: list[Feedback], failing: list[Candidate]
) -> list[Message]:
    """The conversation so far plus what was wrong with the answer to repair from: the best
    failing candidate (by the verifier's score), else the first answer."""
    chosen = next((item for item in feedback if failing and item[0] == failing[0].raw), feedback[0])
    answer, problem = chosen
    return [
        *messages,
        {"role": "assistant", "content": answer or "(no answer)"},
        {
            "role": "user",
            "content": sanitise(problem, run.request.guard.known_secrets)
            + "\n\nAnswer with a complete new plan.",
        },
    ]


def _give_up(run: _Run, rounds: int, stop: str | None, closest: Candidate | None) -> LoopOutcome:
    """No green candidate from the model: the deterministic change as a last resort, else
    needs-human with the closest candidate's verification."""
    reasons = [stop] if stop else []
    deterministic = run.deterministic
    if run.has_deterministic and deterministic is not None and deterministic.fallback:
        run.tally.tried.append("the deterministic change alone, as a last resort")
        candidate = deterministic_candidate(
            run.request, run.base, run.workspace, deterministic, run.verify, run.tally
        )
        if candidate.check.publishable:
            return proposed(run.request, run.baseline, candidate, run.tally, rounds, deterministic)
    reasons.append(
        f"no candidate passed verification in {rounds} round(s)"
        if rounds and not stop
        else "no candidate passed verification"
    )
    outcome = finish(
        "needs-human", run.request, run.baseline, None, run.tally, rounds, tuple(reasons)
    )
    # the closest candidate's verification is what a human needs to see first
    return replace(outcome, check=closest.check) if closest is not None else outcome


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
