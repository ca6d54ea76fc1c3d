"""The evaluation ledger: the only code that writes evaluation rows.

An evaluation moves ``queued -> running -> done`` (and ``running -> queued`` when its worker
lets go of it or its lease expires). Every transition here is one conditional UPDATE (or one
INSERT), so two workers racing for the same row cannot both win: the database decides, and the
loser learns it from the row count.

A worker **claims** an evaluation before any work: the claim writes a lease (an owner and an
expiry) that the worker renews (:func:`heartbeat`) while it runs. A second delivery of the same
evaluation finds a live lease and is dropped; a lease that expired (its worker died) may be
claimed again, and :func:`sweep` puts such rows back in the queue, together with queued rows
whose message was sent long ago and never claimed (a message lost in a broker restart).

Every function takes an ``Engine`` (one transaction of its own) or a ``Session`` (joins the
caller's transaction, e.g. the pipeline's last write with its stage rows and audit entry).
"""

from __future__ import annotations

from specfleet.core.db.ledger.states import (
    MAX_ERROR,
    PENDING_STATES,
    EvaluationState,
    LedgerRow,
    NewEvaluation,
    Outcome,
    Target,
)
from specfleet.core.db.ledger.sweep import (
    SweepResult,
    redispatch_stale,
    requeue_expired,
    sweep,
)
from specfleet.core.db.ledger.transitions import (
    Finish,
    claim,
    fail,
    fingerprint_holder,
    finish,
    give_up,
    heartbeat,
    inspect,
    mark_dispatched,
    pending_id,
    queue,
    queue_many,
    queue_once,
    release,
    take_fingerprint,
    take_over,
)

__all__ = [
    "MAX_ERROR",
    "PENDING_STATES",
    "EvaluationState",
    "Finish",
    "LedgerRow",
    "NewEvaluation",
    "Outcome",
    "SweepResult",
    "Target",
    "claim",
    "fail",
    "fingerprint_holder",
    "finish",
    "give_up",
    "heartbeat",
    "inspect",
    "mark_dispatched",
    "pending_id",
    "queue",
    "queue_many",
    "queue_once",
    "redispatch_stale",
    "release",
    "requeue_expired",
    "sweep",
    "take_fingerprint",
    "take_over",
]
