"""The evaluation of one product: the stages of DESIGN.md section 1, in order, recorded.

:func:`run_evaluation` is idempotent (see ``worker/pipeline/__init__.py`` for the contract):
a finished evaluation is returned as recorded; anything that goes wrong with the product
becomes an outcome; only transient infrastructure errors are raised, for the task to retry.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import col, select

from agent.amend import AmendmentAsk, Conflict
from core.db import AuditEntry, Evaluation, PolicySetRecord, Product, Proposal, session_scope
from core.db.types import utcnow
from core.errors import (
    DatabaseError,
    DocumentInvalid,
    ForgeTransientError,
    InputError,
    SpecfleetError,
)
from core.forges.interface import EVERGREEN_BRANCH
from core.git import export_tree
from core.log import get_logger
from core.metrics import count_evaluation
from core.windows import week_start
from policies.check import applicable
from policies.compliance import record_check
from worker.pipeline.amend import (
    AmendedSpec,
    amendment_branch,
    amendment_for,
    amendment_title,
    draft_spec,
    record_amendment_outcome,
)
from worker.pipeline.apply import build_candidate
from worker.pipeline.assess import (
    assess_checkout,
    latest_policy_version,
    policy_set,
    rules_for,
)
from worker.pipeline.deps import PipelineDeps
from worker.pipeline.description import (
    DescriptionFacts,
    NewRule,
    render_description,
    spec_change_facts,
)
from worker.pipeline.fetch import mirror_with, remote_tip
from worker.pipeline.fingerprint import (
    FingerprintInputs,
    NoOpDecision,
    PreviousEvaluation,
    decide_noop,
    facts_digest,
    registration_digest,
    rules_digest,
)
from worker.pipeline.llm_plan import LLMPlanning, commit_loop_candidate, plan_with_llm, usage_of
from worker.pipeline.load import spec_at
from worker.pipeline.plan import Plan, make_plan
from worker.pipeline.publish import LABELS, publish
from worker.pipeline.record import StageLog
from worker.pipeline.verification import (
    baseline_build_broken,
    baseline_problem,
    verify_candidate,
)
from worker.verify.diagnosis import OWNER_ACTION_BROKEN_BASELINE, OWNER_ACTION_NOT_GREEN

log = get_logger(__name__)

OUTCOMES = (
    "no-op",
    "proposed",
    "no-change",
    "unchanged",
    "suppressed",
    "needs-human",
    "conflict",  # an owner's amendment collides with earlier clauses: returned to the owner
    "failed",
)
TERMINAL = "done"


@dataclass(frozen=True)
class EvaluationResult:
    """How an evaluation ended, as recorded on its row."""

    evaluation_id: int
    product_id: str
    window: str
    trigger: str
    outcome: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def merge_request_url(self) -> str | None:
        url = self.summary.get("merge_request")
        return url if isinstance(url, str) else None

    @property
    def reason(self) -> str:
        return str(self.summary.get("reason") or self.error or "")

    @classmethod
    def from_row(cls, row: Evaluation) -> EvaluationResult:
        assert row.id is not None
        return cls(
            row.id,
            row.product_id,
            row.window,
            row.trigger,
            row.outcome or "failed",
            dict(row.summary or {}),
            row.error,
        )


@dataclass
class _Started:
    evaluation: Evaluation
    product: Product
    previous: PreviousEvaluation | None
    policy_version: int | None
    attempt: int
    marked: bool = False  # the row says running (written once the evaluation goes past no-op)


class _Finish(Exception):  # control flow only: never escapes this module
    """Raised by a stage to end the evaluation with an outcome."""

    def __init__(self, outcome: str, summary: dict[str, Any], error: str | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.summary = summary
        self.error = error


def run_evaluation(evaluation_id: int, deps: PipelineDeps) -> EvaluationResult:
    """Run (or continue, or return) evaluation ``evaluation_id``; see the package docstring."""
    try:
        result = _run(evaluation_id, deps)
        if result.trigger == "amendment":
            record_amendment_outcome(
                deps.engine, evaluation_id, result.outcome, result.reason, result.summary
            )
        return result
    except SQLAlchemyError as error:
        # the database went away mid-evaluation: worth a retry, and nothing half-written
        raise DatabaseError(f"database error during evaluation {evaluation_id}: {error}") from error


def _run(evaluation_id: int, deps: PipelineDeps) -> EvaluationResult:
    started = _start(evaluation_id, deps)
    if isinstance(started, EvaluationResult):
        return started
    evaluation, product = started.evaluation, started.product
    stages = StageLog(evaluation_id, started.attempt, deps.clock)
    facts: dict[str, Any] = {"trigger": evaluation.trigger}
    tip: str | None = None
    try:
        with stages.stage("fetch") as stage:
            tip = remote_tip(product.repo_url, product.branch, deps.mirrors.timeout_seconds)
            stage.detail["commit"] = tip
        facts["commit"] = tip
        policies = policy_set(deps, started.policy_version)
        with stages.stage("fingerprint") as stage:
            now = deps.clock()
            rules = rules_for(policies, product.id, product.tags, product.runtime, now.date())
            partial = {
                "commit": tip,
                "registration": registration_digest(
                    product.repo_url, product.branch, product.spec_path
                ),
                "rules": rules_digest(rules),
                "planner": deps.planner_identity,
            }
            previous = started.previous
            decision: NoOpDecision
            if evaluation.trigger == "amendment":
                # an owner's request is new input the fingerprint cannot see: never a no-op,
                # and its claim must not collide with the weekly evaluation of the same inputs
                partial["planner"] += f"+amendment-evaluation-{evaluation.id}"
                inputs = None
                decision = NoOpDecision(False, "an owner asked for a spec amendment")
            elif previous is not None and previous.commit == tip:
                inputs = FingerprintInputs(
                    **partial, facts=facts_digest(previous.pins, deps.index, deps.advisories)
                )
                decision = decide_noop(previous, inputs)
            else:
                inputs = None
                decision = NoOpDecision(
                    False,
                    "first evaluation of this product"
                    if previous is None
                    else "changed: the branch tip",
                )
            stage.outcome = "no-op" if decision.noop else "changed"
            stage.detail["reason"] = decision.reason
        if decision.noop and inputs is not None and previous is not None:
            same_window = previous.window == evaluation.window
            raise _Finish(
                "no-op",
                {
                    "reason": decision.reason,
                    "same_as": decision.same_as,
                    "commit": tip,
                    "inputs": inputs.as_dict(),
                    "pins": [list(pin) for pin in previous.pins],
                    "_fingerprint": None if same_window else inputs.fingerprint(),
                },
            )
        facts["reason_to_evaluate"] = decision.reason
        deps.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="specfleet-eval-", dir=deps.work_dir) as scratch:
            _evaluate(Path(scratch), deps, started, stages, tip, partial, policies, facts)
    except _Finish as finish:
        return _finish(
            deps, started, stages, finish.outcome, {**facts, **finish.summary}, finish.error, tip
        )
    except (ForgeTransientError, DatabaseError):
        if not started.marked:
            _mark_running(deps, started)
        _write_stages(deps, stages)
        raise
    except SQLAlchemyError:
        raise
    except DocumentInvalid as error:
        problems = [problem.render() for problem in error.problems[:20]]
        return _finish(
            deps,
            started,
            stages,
            "failed",
            {**facts, "problems": problems},
            f"{type(error).__name__}: {error}",
            tip,
        )
    except SpecfleetError as error:
        return _finish(deps, started, stages, "failed", facts, f"{error}", tip)
    except Exception as error:  # a bug must not stop the rest of the fleet
        failing = stages.stages[-1].name if stages.stages else "start"
        if type(error).__name__ == "SoftTimeLimitExceeded":  # Celery's, named not imported
            return _finish(
                deps,
                started,
                stages,
                "failed",
                facts,
                f"stopped in stage {failing}: the evaluation exceeded the worker's soft time "
                "limit (SPECFLEET_TASK_SOFT_TIME_LIMIT)",
                tip,
            )
        log.exception("evaluation crashed", evaluation_id=evaluation_id, product=product.id)
        return _finish(
            deps,
            started,
            stages,
            "failed",
            facts,
            f"internal error in stage {failing}: {type(error).__name__}: {error}",
            tip,
        )
    raise AssertionError(f"evaluation {evaluation_id} ended without an outcome")


def _evaluate(
    scratch: Path,
    deps: PipelineDeps,
    started: _Started,
    stages: StageLog,
    tip: str,
    partial: dict[str, str],
    policies: Any,
    facts: dict[str, Any],
) -> NoReturn:
    """The stages after the no-op check; always ends by raising :class:`_Finish`."""
    evaluation, product = started.evaluation, started.product
    now = deps.clock()
    _mark_running(deps, started)
    with stages.stage("load-spec") as stage:
        mirror, fetched = mirror_with(deps.mirrors, product.repo_url, tip)
        spec, spec_bytes = spec_at(mirror, tip, product.spec_path)
        stage.detail.update({"mirror": "fetched" if fetched else "cached", "spec": spec.id})
    _write_stages(deps, stages)

    baseline = scratch / "baseline"
    with stages.stage("assess") as stage:
        export_tree(mirror, tip, baseline)
        before = assess_checkout(baseline, spec, product.spec_path, deps, policies, now)
        if before.check is not None:
            record_check(deps.engine, before.check)
        inputs = FingerprintInputs(
            **partial, facts=facts_digest(before.pins, deps.index, deps.advisories)
        )
        fingerprint = inputs.fingerprint()
        failing = sorted({f.rule_id for f in before.findings if f.status == "fail"})
        stage.detail.update(
            {
                "pins": len(before.pins),
                "vulnerable": [str(item.pin.name) for item in before.health.vulnerable],
                "failing_rules": failing,
            }
        )
        facts.update({"inputs": inputs.as_dict(), "pins": [list(pin) for pin in before.pins]})
        holder = _claim(deps, evaluation, fingerprint)
        if holder is not None:
            stage.outcome = "duplicate"
            raise _Finish(
                "no-op",
                {"reason": f"same inputs as evaluation {holder} in this window", "same_as": holder},
            )
    _write_stages(deps, stages)

    with stages.stage("plan") as stage:
        rules, _ = applicable(policies.rules if policies else (), spec, now.date())
        plan = make_plan(baseline, before, rules, now.date())
        stage.outcome = "empty" if plan.empty else "changes"
        stage.detail["upgrades"] = [
            f"{u.package} {u.current} -> {u.target}" for u in plan.dependencies.upgrades
        ]
        if plan.dependencies.blocked:
            stage.detail["blocked"] = [f"{b.package}: {b.why}" for b in plan.dependencies.blocked]
    planning = deps.planner if isinstance(deps.planner, LLMPlanning) else None
    amending = evaluation.trigger == "amendment"
    if amending and planning is None:
        raise _Finish(
            "needs-human",
            {
                "reason": "amendments need an LLM endpoint and the workers have none configured "
                "(SPECFLEET_LLM_BASE_URL)"
            },
        )
    if planning is None and plan.empty:
        raise _Finish("no-change", {"reason": plan.reason, "_fingerprint": fingerprint})
    _write_stages(deps, stages)
    from worker.report import render_verdict  # DuckDB and friends: only when verifying

    amended: AmendedSpec | None = None
    if amending:
        assert planning is not None
        amended = _draft_stage(planning, deps, started, stages, spec, spec_bytes, facts)
        plan = replace(plan, dependencies=replace(plan.dependencies, upgrades=()))
    if planning is not None:
        candidate, verdict, plan = _agent_stages(
            planning,
            deps,
            started,
            stages,
            spec,
            baseline,
            mirror,
            tip,
            before,
            plan,
            policies,
            rules,
            now,
            scratch,
            fingerprint,
            amended,
        )
        report = render_verdict(verdict)
    else:
        with stages.stage("apply") as stage:
            candidate = build_candidate(
                baseline=baseline,
                scratch=scratch,
                mirror=mirror,
                tip=tip,
                spec=spec,
                spec_path=product.spec_path,
                plan=plan,
                assessment=before,
                policy_version=policies.version if policies else None,
                day=week_start(evaluation.window),
            )
            stage.detail.update(
                {
                    "commit": candidate.commit,
                    "key": candidate.key,
                    "amendment": candidate.amendment_id,
                }
            )
        _write_stages(deps, stages)

        with stages.stage("verify") as stage:
            verdict, _after = verify_candidate(
                deps=deps,
                spec=spec,
                spec_path=product.spec_path,
                baseline=baseline,
                baseline_commit=tip,
                baseline_assessment=before,
                candidate=candidate,
                policies=policies,
                now=now,
                window=evaluation.window,
            )
            report = render_verdict(verdict)
            stage.outcome = "publishable" if verdict.publishable else "not-publishable"
            stage.detail["reasons"] = verdict.reasons
        _write_stages(deps, stages)
    facts.update(
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
        raise _Finish(
            "needs-human",
            {"reason": owner_fix, "action": OWNER_ACTION_BROKEN_BASELINE, "verification": report},
        )
    broken = baseline_problem(verdict)
    if broken is not None:
        raise _Finish("failed", {"verification": report, "_fingerprint": None}, broken)
    if not verdict.publishable:
        raise _Finish(
            "needs-human",
            {
                "reason": "the candidate is not verified green: " + "; ".join(verdict.reasons),
                "action": OWNER_ACTION_NOT_GREEN,
                "verification": report,
                "_fingerprint": fingerprint,
            },
        )

    with stages.stage("publish") as stage:
        description_facts = _description_facts(
            deps, started, spec, tip, candidate, plan, policies, report, verdict
        )
        if amended is not None:
            description_facts = replace(
                description_facts, spec_change=spec_change_facts(amended, verdict)
            )
        description = render_description(description_facts)
        request = amendment_for(deps.engine, evaluation.id or 0) if amended else None
        publication = publish(
            engine=deps.engine,
            forge=deps.forge_for(product),
            product=product,
            owners=tuple(spec.owners),
            evaluation_id=evaluation.id or 0,
            mirror=mirror,
            candidate=candidate,
            description=description,
            branch=amendment_branch(request.id or 0) if request else EVERGREEN_BRANCH,
            labels=("specfleet", "amendment") if request else LABELS,
        )
        stage.outcome = publication.outcome
        stage.detail.update({"reason": publication.reason, "url": publication.url})
    raise _Finish(
        publication.outcome,
        {
            "reason": publication.reason,
            "merge_request": publication.url,
            "_fingerprint": fingerprint,
            **({"amendment_id": amended.checked.amendment_id} if amended else {}),
        },
    )


def _draft_stage(
    planning: LLMPlanning,
    deps: PipelineDeps,
    started: _Started,
    stages: StageLog,
    spec: Any,
    spec_bytes: bytes,
    facts: dict[str, Any],
) -> AmendedSpec:
    """Draft the owner's amendment into the spec; ends the evaluation on a conflict."""
    evaluation, product = started.evaluation, started.product
    request = amendment_for(deps.engine, evaluation.id or 0)
    if request is None:
        raise _Finish("failed", {}, "no amendment request is recorded for this evaluation")
    ask = AmendmentAsk(request.requirement, request.why)
    facts["amendment_request"] = request.id
    with stages.stage("draft-spec") as stage:
        drafted = draft_spec(
            planning,
            spec,
            spec_bytes.decode("utf-8"),
            product.spec_path,
            ask,
            request.requested_by,
            window=evaluation.window,
            evaluation_id=evaluation.id or 0,
            today=deps.clock().date(),
        )
        usage = {"calls": drafted.calls, "tokens": drafted.tokens, "cost_usd": drafted.cost_usd}
        answer = drafted.answer
        if isinstance(answer, Conflict):
            stage.outcome = "conflict"
            stage.detail["clauses"] = list(answer.clauses)
            raise _Finish(
                "conflict",
                {
                    "reason": answer.render(),
                    "conflict": {
                        "clauses": list(answer.clauses),
                        "explanation": answer.explanation,
                    },
                    "llm": usage,
                },
            )
        if answer is None:
            stage.outcome = "no-draft"
            raise _Finish(
                "needs-human",
                {"reason": drafted.problem or "no usable spec draft", "llm": usage},
            )
        checked = answer.checked
        stage.outcome = "drafted"
        stage.detail.update(
            {
                "amendment": checked.amendment_id,
                "requirements": list(checked.requirement_ids),
                "columns": [
                    f"{o}.{c}" for o, c in (*checked.new_columns, *checked.changed_columns)
                ],
                "changes_earlier_clauses": checked.changes_earlier_clauses,
            }
        )
    _write_stages(deps, stages)
    return answer


def _agent_stages(
    planning: LLMPlanning,
    deps: PipelineDeps,
    started: _Started,
    stages: StageLog,
    spec: Any,
    baseline: Path,
    mirror: Path,
    tip: str,
    before: Any,
    plan: Plan,
    policies: Any,
    rules: Any,
    now: Any,
    scratch: Path,
    fingerprint: str,
    amended: AmendedSpec | None = None,
) -> tuple[Any, Any, Plan]:
    """Plan, apply and verify with the LLM loop; ends the evaluation unless it proposes."""
    from worker.report import render_verdict

    evaluation, product = started.evaluation, started.product
    day = week_start(evaluation.window)
    with stages.stage("agent") as stage:
        result = plan_with_llm(
            planning=planning,
            deps=deps,
            evaluation_id=evaluation.id or 0,
            window=evaluation.window,
            spec=spec,
            spec_path=product.spec_path,
            baseline=baseline,
            baseline_commit=tip,
            before=before,
            plan=plan,
            policies=policies,
            rules=tuple(rules),
            new_rule_ids=frozenset(),
            now=now,
            day=day,
            workspace=scratch / "agent",
            amendment=amended,
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
    _write_stages(deps, stages)
    plan = replace(plan, llm=usage_of(loop))
    usage = {"calls": loop.calls, "tokens": loop.tokens, "cost_usd": round(loop.cost_usd, 6)}
    if loop.outcome == "no-change":
        raise _Finish(
            "no-change",
            {
                "reason": "; ".join(loop.reasons) or plan.reason,
                "llm": usage,
                "_fingerprint": fingerprint,
            },
        )
    if loop.outcome != "proposed" or result.verdict is None:
        summary: dict[str, Any] = {
            "reason": "no verified candidate within the rounds and budget: "
            + "; ".join(loop.reasons),
            "tried": list(loop.tried[:50]),
            "llm": usage,
            "_fingerprint": fingerprint,
        }
        if result.verdict is not None:
            summary["verification"] = render_verdict(result.verdict)
        raise _Finish("needs-human", summary)
    with stages.stage("apply") as stage:
        candidate = commit_loop_candidate(
            outcome=loop,
            plan=plan,
            spec=spec,
            spec_path=product.spec_path,
            scratch=scratch,
            mirror=mirror,
            tip=tip,
            day=day,
            title=amendment_title(amended) if amended else None,
        )
        stage.detail.update({"commit": candidate.commit, "key": candidate.key})
    _write_stages(deps, stages)
    return candidate, result.verdict, plan


def _description_facts(
    deps: PipelineDeps,
    started: _Started,
    spec: Any,
    tip: str,
    candidate: Any,
    plan: Any,
    policies: Any,
    report: str,
    verdict: Any,
) -> DescriptionFacts:
    evaluation, product = started.evaluation, started.product
    baseline_version = _last_merged_policy_version(deps, product.id)
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
    return DescriptionFacts(
        product_id=product.id,
        product_name=spec.name,
        evaluation_id=evaluation.id or 0,
        trigger=evaluation.trigger,
        window=evaluation.window,
        policy_version=policies.version if policies else None,
        baseline_policy_version=baseline_version,
        new_rules=new_rules,
        resolved_rules=tuple(sorted({f.rule_id for f in verdict.resolved})),
        changes=candidate.changes,
        amendment_id=candidate.amendment_id,
        amendment_text=candidate.amendment_text,
        verification=report,
        llm=plan.llm,
        base_branch=product.branch,
        base_commit=tip,
        candidate_commit=candidate.commit,
        proposal_key=candidate.key,
        rationale=candidate.rationale,
        plan_summary=candidate.plan_summary,
    )


def _last_merged_policy_version(deps: PipelineDeps, product_id: str) -> int | None:
    with session_scope(deps.engine) as session:
        row = session.exec(
            select(Evaluation.policy_set_version)
            .join(Proposal, col(Proposal.evaluation_id) == col(Evaluation.id))
            .where(Proposal.product_id == product_id, Proposal.state == "merged")
            .order_by(col(Proposal.id).desc())
            .limit(1)
        ).first()
    return row


def _start(evaluation_id: int, deps: PipelineDeps) -> _Started | EvaluationResult:
    """Read what the no-op check needs; nothing is written yet (a no-op writes once, at its
    end; a real evaluation marks itself running before its first expensive stage)."""
    with session_scope(deps.engine) as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            raise InputError(f"no evaluation {evaluation_id}")
        if evaluation.status == TERMINAL:
            return EvaluationResult.from_row(evaluation)
        product = session.get(Product, evaluation.product_id)
        if product is None or not product.active:
            evaluation.status = TERMINAL
            evaluation.attempts += 1
            evaluation.outcome = "failed"
            evaluation.error = f"product {evaluation.product_id} is not registered (removed?)"
            evaluation.finished_at = utcnow()
            session.add(evaluation)
            session.flush()
            return EvaluationResult.from_row(evaluation)
        last = session.exec(
            select(Evaluation)
            .where(
                Evaluation.product_id == evaluation.product_id,
                Evaluation.status == TERMINAL,
                Evaluation.outcome != "failed",
                col(Evaluation.fingerprint).is_not(None),
                Evaluation.id != evaluation_id,
            )
            .order_by(col(Evaluation.finished_at).desc(), col(Evaluation.id).desc())
            .limit(1)
        ).first()
        previous = None
        if last is not None and last.id is not None and last.fingerprint:
            previous = PreviousEvaluation.from_summary(
                last.id, last.window, last.fingerprint, last.spec_commit, last.summary
            )
        # the newest published set applies; an older version named at queue time is history
        latest = latest_policy_version(session)
        version = latest if latest is not None else evaluation.policy_set_version
        session.expunge_all()
        return _Started(evaluation, product, previous, version, evaluation.attempts + 1)


def _mark_running(deps: PipelineDeps, started: _Started) -> None:
    """Status running and one more attempt, so a dashboard and a redelivery can tell."""
    with session_scope(deps.engine) as session:
        row = session.get(Evaluation, started.evaluation.id)
        if row is not None and row.status != TERMINAL:
            row.status = "running"
            row.attempts += 1
            row.started_at = row.started_at or utcnow()
            session.add(row)
    started.marked = True


def _claim(deps: PipelineDeps, evaluation: Evaluation, fingerprint: str) -> int | None:
    """Take the key (product, window, fingerprint); the holder's id when another has it."""

    def holder() -> int | None:
        with session_scope(deps.engine) as session:
            return session.exec(
                select(Evaluation.id).where(
                    Evaluation.product_id == evaluation.product_id,
                    Evaluation.window == evaluation.window,
                    Evaluation.fingerprint == fingerprint,
                    Evaluation.id != evaluation.id,
                )
            ).first()

    found = holder()
    if found is not None:
        return found
    try:
        with session_scope(deps.engine) as session:
            row = session.get(Evaluation, evaluation.id)
            if row is not None:
                row.fingerprint = fingerprint
                session.add(row)
    except IntegrityError:
        return holder()
    return None


def _write_stages(deps: PipelineDeps, stages: StageLog) -> None:
    with session_scope(deps.engine) as session:
        stages.write_pending(session)


def _finish(
    deps: PipelineDeps,
    started: _Started,
    stages: StageLog,
    outcome: str,
    summary: dict[str, Any],
    error: str | None,
    tip: str | None,
) -> EvaluationResult:
    """Record the outcome (status done), the stages and an audit entry, in one transaction."""
    evaluation = started.evaluation
    claim = summary.pop("_fingerprint", None)
    summary["stages"] = {stage.name: stage.duration_ms for stage in stages.stages}
    # a failure did not answer the question: it holds no key, so the same inputs run again
    release = outcome == "failed"

    def write(fingerprint: str | None, release: bool) -> EvaluationResult:
        with session_scope(deps.engine) as session:
            row = session.get(Evaluation, evaluation.id)
            if row is None:
                raise InputError(f"evaluation {evaluation.id} disappeared")
            if row.status == TERMINAL:  # a concurrent delivery finished first
                return EvaluationResult.from_row(row)
            stages.write_pending(session)
            if not started.marked:
                row.attempts += 1
                row.started_at = row.started_at or utcnow()
            row.status = TERMINAL
            row.outcome = outcome
            row.summary = summary
            row.error = error[:4000] if error else None
            row.finished_at = utcnow()
            row.spec_commit = tip or row.spec_commit
            row.policy_set_version = started.policy_version
            if release:
                row.fingerprint = None
            elif fingerprint is not None:
                row.fingerprint = fingerprint
            session.add(row)
            session.add(
                AuditEntry(
                    actor="specfleet",
                    action=f"evaluation.{outcome}",
                    subject_type="evaluation",
                    subject_id=str(evaluation.id),
                    detail={
                        "product": evaluation.product_id,
                        "window": evaluation.window,
                        "trigger": evaluation.trigger,
                        "merge_request": summary.get("merge_request"),
                        "error": row.error,
                    },
                )
            )
            session.flush()
            return EvaluationResult.from_row(row)

    try:
        result = write(None if release else claim, release)
    except IntegrityError:
        # another no-op of this window took the same fingerprint meanwhile: keep none
        result = write(None, release)
    count_evaluation(result.outcome, evaluation.trigger)
    return result


def queue_evaluation(
    engine: Any,
    product_id: str,
    window: str,
    trigger: str,
    policy_set_version: int | None = None,
) -> int:
    """The queued (or running) evaluation of ``product_id`` for ``window`` and ``trigger``,
    created when there is none; returns its id."""
    from core.errors import ProductNotFound

    try:
        week_start(window)
    except ValueError as error:
        raise InputError(str(error)) from error
    with session_scope(engine) as session:
        product = session.get(Product, product_id)
        if product is None or not product.active:
            raise ProductNotFound(f"no product {product_id!r} is registered")
        existing = session.exec(
            select(Evaluation.id)
            .where(
                Evaluation.product_id == product_id,
                Evaluation.window == window,
                Evaluation.trigger == trigger,
                col(Evaluation.status).in_(["queued", "running"]),
            )
            .order_by(col(Evaluation.id).desc())
            .limit(1)
        ).first()
        if existing is not None:
            return existing
        if policy_set_version is None:
            policy_set_version = session.exec(
                select(PolicySetRecord.version)
                .order_by(col(PolicySetRecord.version).desc())
                .limit(1)
            ).first()
        row = Evaluation(
            product_id=product_id,
            window=window,
            trigger=trigger,
            status="queued",
            policy_set_version=policy_set_version,
            queued_at=utcnow(),
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


__all__ = ["OUTCOMES", "EvaluationResult", "queue_evaluation", "run_evaluation"]
