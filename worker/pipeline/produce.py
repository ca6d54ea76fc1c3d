"""The last stages of an evaluation: produce -> verify and repair -> judge -> publish.

One produce path: the deterministic remediators' plan (``stages.plan``) is the first
candidate; with an LLM configured the agent's loop starts from it, may propose better ones and
verifies and repairs each on the same gate; without one the deterministic candidate is applied
and verified once. An owner's amendment is first drafted into the spec (LLM only).
"""

from __future__ import annotations

from dataclasses import replace

from specfleet.agent.amend import AmendmentAsk, Conflict
from specfleet.core.db.ledger import Outcome
from specfleet.core.forges.interface import EVERGREEN_BRANCH
from specfleet.core.windows import week_start
from specfleet.worker.pipeline.amend import (
    AmendedSpec,
    amendment_branch,
    amendment_for,
    amendment_title,
    draft_spec,
)
from specfleet.worker.pipeline.apply import build_candidate
from specfleet.worker.pipeline.context import Ending, EvaluationContext, need
from specfleet.worker.pipeline.description import render_description, spec_change_facts
from specfleet.worker.pipeline.facts import description_facts, rules_new_since_merge
from specfleet.worker.pipeline.llm_plan import (
    LLMPlanning,
    commit_loop_candidate,
    plan_with_llm,
    usage_of,
)
from specfleet.worker.pipeline.publish import LABELS, publish
from specfleet.worker.pipeline.verification import (
    baseline_build_broken,
    baseline_problem,
    verify_candidate,
)
from specfleet.worker.verify.diagnosis import OWNER_ACTION_BROKEN_BASELINE, OWNER_ACTION_NOT_GREEN


def draft(ctx: EvaluationContext) -> Ending | None:
    """An owner's amendment drafted into the spec; a conflict goes back to the owner."""
    planning = ctx.deps.planner
    if not ctx.amending or planning is None:
        return None
    request = amendment_for(ctx.deps.engine, ctx.evaluation_id)
    if request is None:
        return Ending(Outcome.FAILED, {}, "no amendment request is recorded for this evaluation")
    ctx.facts["amendment_request"] = request.id
    spec = need(ctx.spec, "the spec")
    with ctx.stages.stage("draft-spec") as stage:
        drafted = draft_spec(
            planning,
            spec,
            ctx.spec_bytes.decode("utf-8"),
            ctx.product.spec_path,
            AmendmentAsk(request.requirement, request.why),
            request.requested_by,
            window=ctx.evaluation.window,
            evaluation_id=ctx.evaluation_id,
            today=ctx.deps.clock().date(),
        )
        usage = {"calls": drafted.calls, "tokens": drafted.tokens, "cost_usd": drafted.cost_usd}
        answer = drafted.answer
        if isinstance(answer, Conflict):
            stage.outcome = "conflict"
            stage.detail["clauses"] = list(answer.clauses)
        elif answer is None:
            stage.outcome = "no-draft"
        else:
            stage.outcome = "drafted"
            stage.detail.update(_draft_detail(answer))
    if isinstance(answer, Conflict):
        conflict = {"clauses": list(answer.clauses), "explanation": answer.explanation}
        summary = {"reason": answer.render(), "conflict": conflict, "llm": usage}
        return Ending(Outcome.CONFLICT, summary)
    if answer is None:
        reason = drafted.problem or "no usable spec draft"
        return Ending(Outcome.NEEDS_HUMAN, {"reason": reason, "llm": usage})
    ctx.amended = answer
    # the amendment is the change: the remediators' upgrades wait for the weekly evaluation
    plan = need(ctx.plan, "the plan")
    ctx.plan = replace(plan, dependencies=replace(plan.dependencies, upgrades=()))
    return None


def _draft_detail(answer: AmendedSpec) -> dict[str, object]:
    checked = answer.checked
    return {
        "amendment": checked.amendment_id,
        "requirements": list(checked.requirement_ids),
        "columns": [f"{o}.{c}" for o, c in (*checked.new_columns, *checked.changed_columns)],
        "changes_earlier_clauses": checked.changes_earlier_clauses,
    }


def produce(ctx: EvaluationContext) -> Ending | None:
    """The candidate: from the agent's loop (verified and repaired there) when an LLM is
    configured, else the deterministic change applied as a commit."""
    planning = ctx.deps.planner
    if planning is not None:
        return _produce_with_llm(ctx, planning)
    tip, plan, spec = need(ctx.tip, "the tip"), need(ctx.plan, "the plan"), need(ctx.spec, "spec")
    with ctx.stages.stage("apply") as stage:
        ctx.candidate = build_candidate(
            baseline=need(ctx.baseline, "the baseline"),
            scratch=need(ctx.scratch, "the scratch directory"),
            mirror=need(ctx.mirror, "the mirror"),
            tip=tip,
            spec=spec,
            spec_path=ctx.product.spec_path,
            plan=plan,
            assessment=need(ctx.before, "the assessment"),
            policy_version=ctx.policies.version if ctx.policies else None,
            day=week_start(ctx.evaluation.window),
        )
        stage.detail.update(
            {
                "commit": ctx.candidate.commit,
                "key": ctx.candidate.key,
                "amendment": ctx.candidate.amendment_id,
            }
        )
    return None


def _produce_with_llm(ctx: EvaluationContext, planning: LLMPlanning) -> Ending | None:
    from specfleet.worker.report import render_verdict  # DuckDB and friends: only when verifying

    spec, tip, plan = need(ctx.spec, "the spec"), need(ctx.tip, "the tip"), need(ctx.plan, "plan")
    scratch, day = need(ctx.scratch, "the scratch directory"), week_start(ctx.evaluation.window)
    with ctx.stages.stage("agent") as stage:
        result = plan_with_llm(
            planning=planning,
            deps=ctx.deps,
            evaluation_id=ctx.evaluation_id,
            window=ctx.evaluation.window,
            spec=spec,
            spec_path=ctx.product.spec_path,
            baseline=need(ctx.baseline, "the baseline"),
            baseline_commit=tip,
            before=need(ctx.before, "the assessment"),
            plan=plan,
            policies=ctx.policies,
            rules=ctx.rules,
            new_rule_ids=frozenset(rule.id for rule in rules_new_since_merge(ctx)[1]),
            now=need(ctx.now, "the time"),
            day=day,
            workspace=scratch / "agent",
            amendment=ctx.amended,
        )
        loop = result.outcome
        stage.outcome = loop.outcome
        stage.detail.update(
            {
                "source": loop.source,
                "rounds": loop.rounds,
                "calls": loop.calls,
                "tokens": loop.tokens,
                "cost_usd": round(loop.cost_usd, 6),
                "tried": list(loop.tried[:20]),
            }
        )
    ctx.plan = plan = replace(plan, llm=usage_of(loop))
    usage = {"calls": loop.calls, "tokens": loop.tokens, "cost_usd": round(loop.cost_usd, 6)}
    if loop.outcome == "no-change":
        reason = "; ".join(loop.reasons) or plan.reason
        return ctx.ending(Outcome.NO_CHANGE, {"reason": reason, "llm": usage})
    if loop.outcome != "proposed" or result.verdict is None:
        summary: dict[str, object] = {
            "reason": "no verified candidate within the rounds and budget: "
            + "; ".join(loop.reasons),
            "tried": list(loop.tried[:50]),
            "llm": usage,
        }
        if result.verdict is not None:
            summary["verification"] = render_verdict(result.verdict)
        return ctx.ending(Outcome.NEEDS_HUMAN, summary)
    ctx.verdict = result.verdict
    ctx.report = render_verdict(result.verdict)
    with ctx.stages.stage("apply") as stage:
        ctx.candidate = commit_loop_candidate(
            outcome=loop,
            plan=plan,
            spec=spec,
            spec_path=ctx.product.spec_path,
            scratch=scratch,
            mirror=need(ctx.mirror, "the mirror"),
            tip=tip,
            day=day,
            title=amendment_title(ctx.amended) if ctx.amended else None,
        )
        stage.detail.update({"commit": ctx.candidate.commit, "key": ctx.candidate.key})
    return None


def verify(ctx: EvaluationContext) -> Ending | None:
    """The gate on the candidate (the agent's loop has verified its own already)."""
    if ctx.verdict is not None:
        return None
    from specfleet.worker.report import render_verdict

    candidate = need(ctx.candidate, "the candidate")
    with ctx.stages.stage("verify") as stage:
        ctx.verdict, _after = verify_candidate(
            deps=ctx.deps,
            spec=need(ctx.spec, "the spec"),
            spec_path=ctx.product.spec_path,
            baseline=need(ctx.baseline, "the baseline"),
            baseline_commit=need(ctx.tip, "the tip"),
            baseline_assessment=need(ctx.before, "the assessment"),
            candidate=candidate,
            policies=ctx.policies,
            now=need(ctx.now, "the time"),
            window=ctx.evaluation.window,
        )
        ctx.report = render_verdict(ctx.verdict)
        stage.outcome = "publishable" if ctx.verdict.publishable else "not-publishable"
        stage.detail["reasons"] = ctx.verdict.reasons
    return None


def judge(ctx: EvaluationContext) -> Ending | None:
    """Only a candidate verified green goes on; a broken baseline is the product's failure."""
    candidate, verdict = need(ctx.candidate, "the candidate"), need(ctx.verdict, "the verdict")
    ctx.facts.update(
        {
            "proposal_key": candidate.key,
            "changes": [
                {"package": c.package, "from": c.current, "to": c.target, "why": c.why}
                for c in candidate.changes
            ],
        }
    )
    owner_fix = baseline_build_broken(verdict)
    if owner_fix is not None:  # the product's own code fails: its owner must act, not ops
        return ctx.ending(
            Outcome.NEEDS_HUMAN,
            {
                "reason": owner_fix,
                "action": OWNER_ACTION_BROKEN_BASELINE,
                "verification": ctx.report,
            },
        )
    broken = baseline_problem(verdict)
    if broken is not None:
        return Ending(Outcome.FAILED, {"verification": ctx.report}, broken)
    if not verdict.publishable:
        reason = "the candidate is not verified green: " + "; ".join(verdict.reasons)
        return ctx.ending(
            Outcome.NEEDS_HUMAN,
            {"reason": reason, "action": OWNER_ACTION_NOT_GREEN, "verification": ctx.report},
        )
    return None


def publish_stage(ctx: EvaluationContext) -> Ending | None:
    """The merge request opened or updated (idempotently) with the evidence."""
    candidate, amended = need(ctx.candidate, "the candidate"), ctx.amended
    with ctx.stages.stage("publish") as stage:
        facts = description_facts(ctx)
        # the digest and the console list the rules each merge request answers
        ctx.facts["new_rules"] = [
            {"id": rule.id, "severity": rule.severity, "title": rule.title}
            for rule in facts.new_rules
        ]
        if amended is not None:
            facts = replace(
                facts, spec_change=spec_change_facts(amended, need(ctx.verdict, "the verdict"))
            )
        request = amendment_for(ctx.deps.engine, ctx.evaluation_id) if amended else None
        publication = publish(
            engine=ctx.deps.engine,
            forge=ctx.deps.forge_for(ctx.product),
            product=ctx.product,
            owners=tuple(need(ctx.spec, "the spec").owners),
            evaluation_id=ctx.evaluation_id,
            mirror=need(ctx.mirror, "the mirror"),
            candidate=candidate,
            description=render_description(facts),
            branch=amendment_branch(request.id or 0) if request else EVERGREEN_BRANCH,
            labels=("specfleet", "amendment") if request else LABELS,
        )
        stage.outcome = publication.outcome
        stage.detail.update({"reason": publication.reason, "url": publication.url})
    summary: dict[str, object] = {"reason": publication.reason, "merge_request": publication.url}
    if amended is not None:
        summary["amendment_id"] = amended.checked.amendment_id
    return ctx.ending(Outcome(publication.outcome), summary)
