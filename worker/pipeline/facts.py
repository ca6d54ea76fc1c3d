"""What a merge request's description says, gathered from an evaluation's context."""

from __future__ import annotations

from sqlmodel import col, select

from specfleet.core.db import Evaluation, Proposal, session_scope
from specfleet.policies.check import applicable
from specfleet.worker.pipeline.assess import policy_set
from specfleet.worker.pipeline.context import EvaluationContext, need
from specfleet.worker.pipeline.deps import PipelineDeps
from specfleet.worker.pipeline.description import DescriptionFacts, NewRule


def rules_new_since_merge(ctx: EvaluationContext) -> tuple[int | None, tuple[NewRule, ...]]:
    """The policy version of the last merged proposal, and the applicable rules new since:
    what the MR lists and what the planner's prompt marks NEW."""
    deps, spec, policies = ctx.deps, need(ctx.spec, "the spec"), ctx.policies
    baseline_version = last_merged_policy_version(deps, ctx.product.id)
    current = {rule.id: rule for rule in (policies.rules if policies else ())}
    applies, _ = applicable(tuple(current.values()), spec, deps.clock().date())
    known: set[str] = set()
    if baseline_version is not None:
        old = policy_set(deps, baseline_version)
        known = {rule.id for rule in old.rules} if old else set()
    new_rules = tuple(
        NewRule(rule.id, rule.title, rule.severity, rule.kind)
        for rule in sorted(applies, key=lambda r: r.id)
        if rule.id not in known
    )
    return baseline_version, new_rules


def description_facts(ctx: EvaluationContext) -> DescriptionFacts:
    """The facts of the description: rules new since the last merged proposal, the change,
    the verification report, the LLM's usage and rationale."""
    product, evaluation = ctx.product, ctx.evaluation
    spec, candidate = need(ctx.spec, "the spec"), need(ctx.candidate, "the candidate")
    verdict, plan, policies = (
        need(ctx.verdict, "the verdict"),
        need(ctx.plan, "the plan"),
        ctx.policies,
    )
    baseline_version, new_rules = rules_new_since_merge(ctx)
    return DescriptionFacts(
        product_id=product.id,
        product_name=spec.name,
        evaluation_id=ctx.evaluation_id,
        trigger=evaluation.trigger,
        window=evaluation.window,
        policy_version=policies.version if policies else None,
        baseline_policy_version=baseline_version,
        new_rules=new_rules,
        resolved_rules=tuple(sorted({f.rule_id for f in verdict.resolved})),
        changes=candidate.changes,
        amendment_id=candidate.amendment_id,
        amendment_text=candidate.amendment_text,
        verification=ctx.report,
        llm=plan.llm,
        base_branch=product.branch,
        base_commit=need(ctx.tip, "the tip"),
        candidate_commit=candidate.commit,
        proposal_key=candidate.key,
        rationale=candidate.rationale,
        plan_summary=candidate.plan_summary,
        pin_changes=candidate.pin_changes,
        python_target=spec.implementation.runtime if candidate.pin_changes else "",
    )


def last_merged_policy_version(deps: PipelineDeps, product_id: str) -> int | None:
    """The policy set the product's last merged proposal was evaluated under."""
    with session_scope(deps.engine) as session:
        row = session.exec(
            select(Evaluation.policy_set_version)
            .join(Proposal, col(Proposal.evaluation_id) == col(Evaluation.id))
            .where(Proposal.product_id == product_id, Proposal.state == "merged")
            .order_by(col(Proposal.id).desc())
            .limit(1)
        ).first()
    return row
