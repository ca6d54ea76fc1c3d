"""The first stages of an evaluation: fetch -> fingerprint (no-op?) -> load spec -> assess -> plan.

Each is a small function over the :class:`EvaluationContext`; ``None`` means go on, an
:class:`Ending` ends the evaluation (``worker/pipeline/produce.py`` has the stages after these).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from specfleet.core.db import ledger
from specfleet.core.db.ledger import Outcome
from specfleet.core.errors import SpecMissing
from specfleet.core.git import export_tree
from specfleet.core.registry.onboarding import waiting_onboarding
from specfleet.policies.check import applicable
from specfleet.policies.compliance import record_check
from specfleet.worker.pipeline.assess import assess_checkout, policy_set, rules_for
from specfleet.worker.pipeline.context import Ending, EvaluationContext, need
from specfleet.worker.pipeline.fetch import mirror_with, remote_tip
from specfleet.worker.pipeline.fingerprint import (
    FingerprintInputs,
    NoOpDecision,
    decide_noop,
    facts_digest,
    registration_digest,
    rules_digest,
)
from specfleet.worker.pipeline.load import spec_at
from specfleet.worker.pipeline.plan import make_plan


def fetch(ctx: EvaluationContext) -> Ending | None:
    """The branch tip (one ``git ls-remote``) and the policy set that applies."""
    product = ctx.product
    with ctx.stages.stage("fetch") as stage:
        ctx.tip = remote_tip(product.repo_url, product.branch, ctx.deps.mirrors.timeout_seconds)
        stage.detail["commit"] = ctx.tip
    ctx.facts["commit"] = ctx.tip
    ctx.policies = policy_set(ctx.deps, ctx.policy_version)
    return None


def _noop_decision(ctx: EvaluationContext) -> tuple[NoOpDecision, FingerprintInputs | None]:
    previous, tip = ctx.previous, need(ctx.tip, "the tip")
    if ctx.amending:
        # an owner's request is new input the fingerprint cannot see: never a no-op, and its
        # key must not collide with the weekly evaluation of the same inputs
        ctx.partial_inputs["planner"] += f"+amendment-evaluation-{ctx.evaluation_id}"
        return NoOpDecision(False, "an owner asked for a spec amendment"), None
    if previous is None:
        return NoOpDecision(False, "first evaluation of this product"), None
    if previous.commit != tip:
        return NoOpDecision(False, "changed: the branch tip"), None
    facts = facts_digest(previous.pins, ctx.deps.index, ctx.deps.advisories)
    inputs = FingerprintInputs(**ctx.partial_inputs, facts=facts)
    return decide_noop(previous, inputs), inputs


def fingerprint(ctx: EvaluationContext) -> Ending | None:
    """Everything the answer depends on, hashed; the same as last time is a no-op."""
    deps, product = ctx.deps, ctx.product
    with ctx.stages.stage("fingerprint") as stage:
        rules = rules_for(
            ctx.policies, product.id, product.tags, product.runtime, deps.clock().date()
        )
        ctx.partial_inputs = {
            "commit": need(ctx.tip, "the tip"),
            "registration": registration_digest(
                product.repo_url, product.branch, product.spec_path
            ),
            "rules": rules_digest(rules),
            "planner": deps.planner_identity,
        }
        decision, inputs = _noop_decision(ctx)
        stage.outcome = "no-op" if decision.noop else "changed"
        stage.detail["reason"] = decision.reason
    previous = ctx.previous
    if decision.noop and inputs is not None and previous is not None:
        same_window = previous.window == ctx.evaluation.window
        summary: dict[str, object] = {
            "reason": decision.reason,
            "same_as": decision.same_as,
            "commit": ctx.tip,
            "inputs": inputs.as_dict(),
            "pins": [list(pin) for pin in previous.pins],
        }
        # the previous evaluation holds this key in its own window; here it is ours to hold
        return Ending(Outcome.NO_OP, summary, None, None if same_window else inputs.fingerprint())
    ctx.facts["reason_to_evaluate"] = decision.reason
    return None


def load_spec(ctx: EvaluationContext) -> Ending | None:
    """The mirror holding the tip, and the spec at the tip."""
    tip = need(ctx.tip, "the tip")
    with ctx.stages.stage("load-spec") as stage:
        ctx.mirror, fetched = mirror_with(ctx.deps.mirrors, ctx.product.repo_url, tip)
        try:
            ctx.spec, ctx.spec_bytes = spec_at(ctx.mirror, tip, ctx.product.spec_path)
        except SpecMissing:
            waiting = waiting_onboarding(ctx.deps.engine, ctx.product.id)
            if waiting is None:
                raise
            stage.detail["spec"] = "awaiting its onboarding merge request"
            reason = (
                f"no {ctx.product.spec_path} on {ctx.product.branch} yet: the onboarding merge "
                f"request {waiting} carries the drafted spec; merge it to start evaluations"
            )
            return ctx.ending(Outcome.NO_CHANGE, {"reason": reason}, keyed=False)
        stage.detail.update({"mirror": "fetched" if fetched else "cached", "spec": ctx.spec.id})
    return None


def assess(ctx: EvaluationContext) -> Ending | None:
    """Health and policy findings of the tip; the full fingerprint, and its key taken."""
    deps, tip, spec = ctx.deps, need(ctx.tip, "the tip"), need(ctx.spec, "the spec")
    ctx.now = deps.clock()
    ctx.baseline = need(ctx.scratch, "the scratch directory") / "baseline"
    with ctx.stages.stage("assess") as stage:
        export_tree(need(ctx.mirror, "the mirror"), tip, ctx.baseline)
        before = assess_checkout(
            ctx.baseline, spec, ctx.product.spec_path, deps, ctx.policies, ctx.now
        )
        ctx.before = before
        if before.check is not None:
            record_check(deps.engine, before.check)
        inputs = FingerprintInputs(
            **ctx.partial_inputs, facts=facts_digest(before.pins, deps.index, deps.advisories)
        )
        ctx.fingerprint = inputs.fingerprint()
        failing = sorted({f.rule_id for f in before.findings if f.status == "fail"})
        stage.detail.update(
            {
                "pins": len(before.pins),
                "vulnerable": [str(item.pin.name) for item in before.health.vulnerable],
                "failing_rules": failing,
            }
        )
        ctx.facts.update({"inputs": inputs.as_dict(), "pins": [list(pin) for pin in before.pins]})
        holder = take_key(ctx, ctx.fingerprint)
        if holder is not None:
            stage.outcome = "duplicate"
    if holder is not None:
        summary = {
            "reason": f"same inputs as evaluation {holder} in this window",
            "same_as": holder,
        }
        return Ending(Outcome.NO_OP, summary)
    return None


def take_key(ctx: EvaluationContext, fingerprint: str) -> int | None:
    """Take the key (product, window, fingerprint); the holder's id when another has it."""
    engine, evaluation = ctx.deps.engine, ctx.evaluation

    def holder() -> int | None:
        return ledger.fingerprint_holder(
            engine, ctx.evaluation_id, evaluation.product_id, evaluation.window, fingerprint
        )

    found = holder()
    if found is not None:
        return found
    try:
        ledger.take_fingerprint(engine, ctx.evaluation_id, fingerprint, ctx.owner)
    except IntegrityError:  # taken by a concurrent evaluation between the two statements
        return holder()
    return None


def plan(ctx: EvaluationContext) -> Ending | None:
    """The deterministic remediators' change: the first candidate of every evaluation."""
    now, before = need(ctx.now, "the time"), need(ctx.before, "the assessment")
    with ctx.stages.stage("plan") as stage:
        rules, _ = applicable(
            ctx.policies.rules if ctx.policies else (), need(ctx.spec, "the spec"), now.date()
        )
        ctx.rules = tuple(rules)
        ctx.plan = make_plan(need(ctx.baseline, "the baseline"), before, rules, now.date())
        stage.outcome = "empty" if ctx.plan.empty else "changes"
        stage.detail["upgrades"] = [
            f"{u.package} {u.current} -> {u.target}" for u in ctx.plan.dependencies.upgrades
        ]
        if ctx.plan.dependencies.blocked:
            stage.detail["blocked"] = [
                f"{b.package}: {b.why}" for b in ctx.plan.dependencies.blocked
            ]
    llm = ctx.deps.planner
    if ctx.amending and llm is None:
        reason = (
            "amendments need an LLM endpoint and the workers have none configured "
            "(SPECFLEET_LLM_BASE_URL)"
        )
        return Ending(Outcome.NEEDS_HUMAN, {"reason": reason})
    if llm is None and ctx.plan.empty:
        return ctx.ending(Outcome.NO_CHANGE, {"reason": ctx.plan.reason})
    return None
