"""Leases from the worker's side: who owns one, keeping it alive, and claiming before work.

A delivery's lease owner is ``task_id@host:pid``, so a worker can tell a lease held by a process
that was killed on its own host (taken over at once) from one held by a live worker elsewhere
(the delivery is a duplicate: dropped, logged).
"""

from __future__ import annotations

import contextvars
import os
import socket
import threading
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from specfleet.core.db import ledger
from specfleet.core.db.ledger import EvaluationState
from specfleet.core.db.types import utcnow
from specfleet.core.log import get_logger
from specfleet.core.settings import Settings

log = get_logger("specfleet.worker")


def lease_owner(task_id: str | None) -> str:
    """Who holds a lease: this delivery, in this process on this host."""
    return f"{task_id or 'no-task'}@{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` was a process on this host that no longer exists (SIGKILLed)."""
    if not owner or "@" not in owner:
        return False
    host, _, pid = owner.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseKeeper:
    """Renews a lease every third of its length while an evaluation runs (a daemon thread)."""

    def __init__(self, engine: Engine, evaluation_id: int, owner: str, lease_seconds: float):
        self.engine, self.evaluation_id, self.owner = engine, evaluation_id, owner
        self.lease_seconds = lease_seconds
        self.lost = False
        self._stop = threading.Event()
        # the thread logs with the evaluation's context (evaluation_id, product, task_id ...)
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"lease-{evaluation_id}", daemon=True
        )

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                kept = ledger.heartbeat(
                    self.engine, self.evaluation_id, self.owner, self.lease_seconds
                )
            except SQLAlchemyError as error:  # an outage: the lease may lapse; keep trying
                log.warning("lease not renewed: database unreachable", error=str(error)[:200])
                continue
            if not kept:
                self.lost = True
                log.warning("lease lost: another worker took the evaluation over")
                return

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def claim_or_skip(
    engine: Engine, settings: Settings, evaluation_id: int, owner: str
) -> dict[str, Any] | None:
    """Claim the evaluation for ``owner``; None when claimed, else why this delivery does
    nothing (missing, done, leased by a live worker, given up)."""
    lease, attempts = settings.lease_seconds, settings.max_attempts
    if ledger.claim(engine, evaluation_id, owner, lease, max_attempts=attempts):
        return None
    row = ledger.inspect(engine, evaluation_id)
    if row is None:
        log.warning("no such evaluation", evaluation_id=evaluation_id)
        return {"evaluation_id": evaluation_id, "outcome": None, "skipped": "missing"}
    structlog.contextvars.bind_contextvars(
        product=row.product_id, window=row.window, trigger=row.trigger
    )
    if row.state is EvaluationState.DONE:
        return {"evaluation_id": evaluation_id, "outcome": row.outcome, "skipped": "done"}
    holder_alive = row.lease_live(utcnow()) and not owner_is_dead(row.lease_owner)
    exhausted = row.attempts >= attempts
    # its worker process was killed on this host: no need to wait for the lease to expire
    orphaned = row.state is EvaluationState.RUNNING and not holder_alive and not exhausted
    if orphaned and ledger.take_over(engine, evaluation_id, owner, row.lease_owner or "", lease):
        log.info("lease of a dead worker taken over", previous_owner=row.lease_owner)
        return None
    if not holder_alive and exhausted:
        ledger.give_up(
            engine,
            evaluation_id,
            f"given up: claimed {row.attempts} times and never finished "
            "(its workers died each time; SPECFLEET_MAX_ATTEMPTS)",
        )
        log.warning("evaluation given up", attempts=row.attempts)
        return {"evaluation_id": evaluation_id, "outcome": "given-up"}
    log.warning(
        "duplicate delivery dropped: another worker holds the lease",
        lease_owner=row.lease_owner,
        lease_expires_at=str(row.lease_expires_at),
    )
    return {"evaluation_id": evaluation_id, "outcome": None, "skipped": "leased"}
