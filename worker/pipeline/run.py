"""The evaluation of one product: the stages of DESIGN.md section 1, in order, recorded.

:func:`run_evaluation` is idempotent (see ``worker/pipeline/__init__.py`` for the contract):
a finished evaluation is returned as recorded; anything that goes wrong with the product
becomes an outcome; only transient infrastructure errors are raised, for the task to retry.

The road is linear: :data:`STAGES` run in order over one :class:`EvaluationContext` until one
returns an :class:`Ending`; :func:`record` writes it (row, stage rows, audit entry) in one
transaction through the ledger.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from specfleet.core.db import (
    AuditEntry,
    Evaluation,
    PolicySetRecord,
    Product,
    ledger,
    session_scope,
)
from specfleet.core.db.ledger import Outcome
from specfleet.core.errors import (
    DatabaseError,
    DocumentInvalid,
    ForgeTransientError,
    InputError,
    SpecfleetError,
)
from specfleet.core.log import get_logger
from specfleet.core.metrics import count_evaluation
from specfleet.core.windows import week_start
from specfleet.worker.pipeline import produce, stages
from specfleet.worker.pipeline.amend import record_amendment_outcome
from specfleet.worker.pipeline.assess import latest_policy_version
from specfleet.worker.pipeline.context import Ending, EvaluationContext, Stage, Summary
from specfleet.worker.pipeline.deps import PipelineDeps
from specfleet.worker.pipeline.fingerprint import PreviousEvaluation
from specfleet.worker.pipeline.record import StageLog
from specfleet.worker.reaper import scratch_root

log = get_logger(__name__)

OUTCOMES = tuple(outcome.value for outcome in Outcome if outcome is not Outcome.GIVEN_UP)
TERMINAL = ledger.EvaluationState.DONE.value

STAGES: tuple[Stage, ...] = (
    stages.fetch,
    stages.fingerprint,
    stages.load_spec,
    stages.assess,
    stages.plan,
    produce.draft,
    produce.produce,
    produce.verify,
    produce.judge,
    produce.publish_stage,
)
# the no-op path writes its stage rows once, with the outcome; later stages flush as they go
# so a dashboard sees a long evaluation progress
_BUFFERED = frozenset({"fetch", "fingerprint"})


@dataclass(frozen=True)
class EvaluationResult:
    """How an evaluation ended, as recorded on its row."""

    evaluation_id: int
    product_id: str
    window: str
    trigger: str
    outcome: str
    summary: dict[str, Any] = field(default_factory=dict)  # JSON as stored on the row
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


def run_evaluation(
    evaluation_id: int, deps: PipelineDeps, owner: str | None = None
) -> EvaluationResult:
    """Run (or return) evaluation ``evaluation_id``; see the package docstring.

    ``owner`` is the lease a worker task already holds (``specfleet.core.db.ledger.claim``); without
    one the evaluation is claimed here, for this process.
    """
    try:
        with structlog.contextvars.bound_contextvars(evaluation_id=evaluation_id):
            result = _run(evaluation_id, deps, owner)
        if result.trigger == "amendment":
            record_amendment_outcome(
                deps.engine, evaluation_id, result.outcome, result.reason, result.summary
            )
        return result
    except SQLAlchemyError as error:
        # the database went away mid-evaluation: worth a retry, and nothing half-written
        raise DatabaseError(f"database error during evaluation {evaluation_id}: {error}") from error


def _run(evaluation_id: int, deps: PipelineDeps, owner: str | None) -> EvaluationResult:
    started = start(evaluation_id, deps, owner)
    if isinstance(started, EvaluationResult):
        return started
    evaluation = started.evaluation
    ids = {
        "product": evaluation.product_id,
        "window": evaluation.window,
        "trigger": evaluation.trigger,
    }
    # bound for the rest of the task too: Celery's own "Task ... succeeded" line comes after
    # the pipeline returns (the task's after_return clears the context)
    structlog.contextvars.bind_contextvars(**ids)
    # every line logged while this evaluation runs carries its ids (stage is bound per stage)
    with structlog.contextvars.bound_contextvars(
        product=evaluation.product_id, window=evaluation.window, trigger=evaluation.trigger
    ):
        try:
            with _scratch(deps) as scratch:
                started.scratch = scratch
                ending = run_stages(started)
        except (ForgeTransientError, DatabaseError):
            _write_stages(started)
            raise
        except SQLAlchemyError:
            raise
        except Exception as error:  # a product's problem (or a bug) must not stop the fleet
            ending = failure(started, error)
        return record(started, ending)


def run_stages(ctx: EvaluationContext) -> Ending:
    """The stages in order until one ends the evaluation."""
    for stage in STAGES:
        name = stage.__name__.removesuffix("_stage").replace("_", "-")
        with structlog.contextvars.bound_contextvars(stage=name):
            ending = stage(ctx)
        if ending is not None:
            return ending
        if ctx.stages.stages and ctx.stages.stages[-1].name not in _BUFFERED:
            _write_stages(ctx)
    return Ending(Outcome.FAILED, {}, "the pipeline ended without an outcome")


def failure(ctx: EvaluationContext, error: Exception) -> Ending:
    """The ending of an evaluation a stage could not finish: the product's fault in words
    a person can act on, or an internal error named with its stage."""
    failing = ctx.stages.stages[-1].name if ctx.stages.stages else "start"
    if isinstance(error, DocumentInvalid):
        problems = [problem.render() for problem in error.problems[:20]]
        return Ending(Outcome.FAILED, {"problems": problems}, f"{type(error).__name__}: {error}")
    if isinstance(error, SpecfleetError):
        return Ending(Outcome.FAILED, {}, f"{error}")
    if type(error).__name__ == "SoftTimeLimitExceeded":  # Celery's, named not imported
        return Ending(
            Outcome.FAILED,
            {},
            f"stopped in stage {failing}: the evaluation exceeded the worker's soft time "
            "limit (SPECFLEET_TASK_SOFT_TIME_LIMIT)",
        )
    log.exception("evaluation crashed")
    return Ending(
        Outcome.FAILED, {}, f"internal error in stage {failing}: {type(error).__name__}: {error}"
    )


@contextmanager
def _scratch(deps: PipelineDeps) -> Iterator[Path]:
    deps.work_dir.mkdir(parents=True, exist_ok=True)
    # a worker's scratch lives under its owner directory, reaped if the worker dies
    scratch_parent = scratch_root(deps.work_dir)
    with tempfile.TemporaryDirectory(prefix="specfleet-eval-", dir=scratch_parent) as scratch:
        yield Path(scratch)


# -- start ------------------------------------------------------------------------------------


def start(
    evaluation_id: int, deps: PipelineDeps, owner: str | None
) -> EvaluationContext | EvaluationResult:
    """Claim the evaluation (unless the caller holds its lease) and read what the no-op check
    needs; a finished (or unrunnable) evaluation is returned as its result."""
    if owner is None:
        owner = inline_owner()
        if not ledger.claim(deps.engine, evaluation_id, owner, deps.lease_seconds):
            return _not_claimed(deps.engine, evaluation_id)
    with session_scope(deps.engine) as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            raise InputError(f"no evaluation {evaluation_id}")
        if evaluation.status == TERMINAL:
            return EvaluationResult.from_row(evaluation)
        product = session.get(Product, evaluation.product_id)
        if product is None or not product.active:
            reason = f"product {evaluation.product_id} is not registered (removed?)"
            ledger.fail(session, evaluation_id, reason, owner=owner)
            session.flush()
            session.refresh(evaluation)
            return EvaluationResult.from_row(evaluation)
        previous = _previous(session, evaluation)
        # the newest published set applies; an older version named at queue time is history
        latest = latest_policy_version(session)
        version = latest if latest is not None else evaluation.policy_set_version
        session.expunge_all()
    return EvaluationContext(
        deps=deps,
        evaluation=evaluation,
        product=product,
        previous=previous,
        policy_version=version,
        owner=owner,
        stages=StageLog(evaluation_id, evaluation.attempts, deps.clock),
        facts={"trigger": evaluation.trigger},
    )


def _previous(session: Session, evaluation: Evaluation) -> PreviousEvaluation | None:
    last = session.exec(
        select(Evaluation)
        .where(
            Evaluation.product_id == evaluation.product_id,
            Evaluation.status == TERMINAL,
            Evaluation.outcome != "failed",
            col(Evaluation.fingerprint).is_not(None),
            Evaluation.id != evaluation.id,
        )
        .order_by(col(Evaluation.finished_at).desc(), col(Evaluation.id).desc())
        .limit(1)
    ).first()
    if last is None or last.id is None or not last.fingerprint:
        return None
    return PreviousEvaluation.from_summary(
        last.id, last.window, last.fingerprint, last.spec_commit, last.summary
    )


def inline_owner() -> str:
    """A lease owner for an evaluation run inside a command (not by a worker task)."""
    return f"inline@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _not_claimed(engine: Engine, evaluation_id: int) -> EvaluationResult:
    with session_scope(engine) as session:
        row = session.get(Evaluation, evaluation_id)
        if row is None:
            raise InputError(f"no evaluation {evaluation_id}")
        if row.status == TERMINAL:
            return EvaluationResult.from_row(row)
        if row.lease_expires_at is not None:
            raise InputError(
                f"evaluation {evaluation_id} is being run by {row.lease_owner} (lease until "
                f"{row.lease_expires_at:%H:%M:%S} UTC)"
            )
        raise InputError(f"evaluation {evaluation_id} cannot be claimed")


# -- record -----------------------------------------------------------------------------------


def _write_stages(ctx: EvaluationContext) -> None:
    with session_scope(ctx.deps.engine) as session:
        ctx.stages.write_pending(session)


def record(ctx: EvaluationContext, ending: Ending) -> EvaluationResult:
    """Record the outcome (state done), the stages and an audit entry, in one transaction."""
    summary: Summary = {**ctx.facts, **ending.summary}
    summary["stages"] = {stage.name: stage.duration_ms for stage in ctx.stages.stages}
    # a failure did not answer the question: it holds no key, so the same inputs run again
    release = ending.outcome is Outcome.FAILED
    try:
        result = _write_outcome(ctx, ending, summary, None if release else ending.fingerprint)
    except IntegrityError:
        # another no-op of this window took the same fingerprint meanwhile: keep none
        result = _write_outcome(ctx, ending, summary, None)
    count_evaluation(result.outcome, ctx.evaluation.trigger)
    log.info("evaluation finished", outcome=result.outcome, reason=result.reason[:200])
    return result


def _write_outcome(
    ctx: EvaluationContext, ending: Ending, summary: Summary, fingerprint: str | None
) -> EvaluationResult:
    evaluation = ctx.evaluation
    with session_scope(ctx.deps.engine) as session:
        finished = ledger.finish(
            session,
            ctx.evaluation_id,
            ledger.Finish(
                ending.outcome,
                summary,
                ending.error,
                fingerprint,
                spec_commit=ctx.tip,
                policy_set_version=ctx.policy_version,
                release_fingerprint=ending.outcome is Outcome.FAILED,
            ),
            owner=ctx.owner,
        )
        if finished:
            ctx.stages.write_pending(session)
            session.add(
                AuditEntry(
                    actor="specfleet",
                    action=f"evaluation.{ending.outcome.value}",
                    subject_type="evaluation",
                    subject_id=str(evaluation.id),
                    detail={
                        "product": evaluation.product_id,
                        "window": evaluation.window,
                        "trigger": evaluation.trigger,
                        "merge_request": summary.get("merge_request"),
                        "error": ending.error[: ledger.MAX_ERROR] if ending.error else None,
                    },
                )
            )
        else:  # a concurrent delivery finished first, or this one lost its lease
            log.warning("outcome not recorded: the evaluation is no longer this worker's")
        session.flush()
        row = session.get(Evaluation, ctx.evaluation_id, populate_existing=True)
        if row is None:
            raise InputError(f"evaluation {ctx.evaluation_id} disappeared")
        return EvaluationResult.from_row(row)


# -- queue ------------------------------------------------------------------------------------


def queue_evaluation(
    engine: Engine,
    product_id: str,
    window: str,
    trigger: str,
    policy_set_version: int | None = None,
) -> int:
    """The queued (or running) evaluation of ``product_id`` for ``window`` and ``trigger``,
    created when there is none; returns its id."""
    from specfleet.core.errors import ProductNotFound

    try:
        week_start(window)
    except ValueError as error:
        raise InputError(str(error)) from error
    with session_scope(engine) as session:
        product = session.get(Product, product_id)
        if product is None or not product.active:
            raise ProductNotFound(f"no product {product_id!r} is registered")
        existing = ledger.pending_id(session, product_id, window, trigger)
        if existing is not None:
            return existing
        if policy_set_version is None:
            policy_set_version = session.exec(
                select(PolicySetRecord.version)
                .order_by(col(PolicySetRecord.version).desc())
                .limit(1)
            ).first()
        return ledger.queue(session, product_id, window, trigger, policy_set_version)


__all__ = ["OUTCOMES", "STAGES", "EvaluationResult", "queue_evaluation", "run_evaluation"]
