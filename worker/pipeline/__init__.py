"""The evaluation pipeline: one product, one window, through the stages of DESIGN.md section 1.

Plain Python, no Celery: ``worker/tasks.py`` calls it from a task and ``specfleet evaluate
--now`` calls it synchronously, through the same code.

The contract::

    queue_evaluation(engine, product_id, window, trigger, policy_set_version=None) -> int
        The queued (or running) Evaluation row of that product, window and trigger, created
        when there is none; returns its id. Unknown product: ProductNotFound; a malformed
        window: InputError.

    run_evaluation(evaluation_id, deps: PipelineDeps) -> EvaluationResult
        Claims the row through the ledger (or runs under the lease ``owner`` a worker task
        holds), runs the stages and always ends with the row in state ``done`` and an
        ``outcome`` (``specfleet.core.db.ledger.Outcome``):

        no-op        the fingerprint equals the last answered evaluation's (nothing cloned,
                     scanned or asked of an LLM), or another evaluation of this window
                     holds the same (product, window, fingerprint): ``summary.same_as``
        proposed     a verified merge request was opened or updated (``summary.merge_request``)
        no-change    nothing to propose; ``summary.reason`` says why
        unchanged    the open merge request already carries this proposal
        suppressed   a product owner closed this very proposal without merging it
        needs-human  the candidate is not verified green; ``summary.verification`` keeps
                     the report
        failed       the repository vanished, the spec is invalid, the baseline cannot be
                     built or verified ...: ``error`` says what, in words a person can act on

        Safe to call again for the same id, concurrently or after a crash: a finished
        evaluation returns its recorded result without work; publishing goes through the
        forge's idempotent ``ensure_*`` calls and ``specfleet.core.forges.decisions``, so there is
        never a second merge request. Raises only what a task should retry:
        ``core.errors.ForgeTransientError`` and ``core.errors.DatabaseError`` (the row then
        stays ``running`` and the next delivery continues it).

    specfleet.worker.wiring.pipeline_deps(settings) -> PipelineDeps
        The collaborators from settings: engine, mirror cache, index client, advisory
        source, forge per product, environment cache, planner (None: deterministic
        remediators only), clock.

Stages (``run.STAGES``: small functions over one typed ``EvaluationContext``, each recorded
as a StageResult row with its duration, each returning None to go on or an ``Ending``):
fetch (remote branch tip) → fingerprint (no-op?) → load-spec (mirror, spec at the tip) →
assess (export, health, policy findings, compliance rows; the fingerprint key is taken) →
plan (the deterministic remediators' change: the first candidate) → draft (an owner's
amendment, LLM only) → produce (the agent's loop from that candidate when an LLM is
configured, else the deterministic commit) → verify (the gate; the loop verified and repaired
its own) → judge → publish → record (the row through ``specfleet.core.db.ledger``, the stages and an
audit entry, one transaction).

Every log line of an evaluation carries evaluation_id, product, window, trigger and stage
(structlog context variables bound by the runner; the task adds task_id).
"""

from specfleet.worker.pipeline.deps import PipelineDeps, Planner
from specfleet.worker.pipeline.run import (
    OUTCOMES,
    EvaluationResult,
    queue_evaluation,
    run_evaluation,
)

__all__ = [
    "OUTCOMES",
    "EvaluationResult",
    "PipelineDeps",
    "Planner",
    "queue_evaluation",
    "run_evaluation",
]
