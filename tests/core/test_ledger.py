"""The evaluation ledger on SQLite and PostgreSQL: each transition one conditional UPDATE."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import Evaluation, Product, ledger, session_scope
from specfleet.core.db.ledger import EvaluationState, Finish, Outcome

T0 = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
LEASE = 60.0


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def queued(engine: Engine, product: str = "orders") -> int:
    with session_scope(engine) as session:
        if session.get(Product, product) is None:
            session.add(Product(id=product, name=product, repo_url=f"file:///{product}"))
    return ledger.queue(engine, product, "2026-W49", "weekly", now=T0)


def state(engine: Engine, evaluation_id: int) -> ledger.LedgerRow:
    row = ledger.inspect(engine, evaluation_id)
    assert row is not None
    return row


def test_claim_takes_a_queued_evaluation_with_a_lease(engine: Engine) -> None:
    """A claim marks the row running, owned by the worker until now + lease; one attempt."""
    evaluation = queued(engine)
    assert ledger.claim(engine, evaluation, "w1", LEASE, now=at(1))
    row = state(engine, evaluation)
    assert row.state is EvaluationState.RUNNING
    assert (row.lease_owner, row.lease_expires_at, row.attempts) == ("w1", at(61), 1)


def test_second_claim_with_a_live_lease_is_refused(engine: Engine) -> None:
    """A duplicate delivery finds a live lease held by another worker: refused, nothing changes."""
    evaluation = queued(engine)
    assert ledger.claim(engine, evaluation, "w1", LEASE, now=at(1))
    assert not ledger.claim(engine, evaluation, "w2", LEASE, now=at(30))
    assert state(engine, evaluation).lease_owner == "w1"
    assert state(engine, evaluation).attempts == 1


def test_expired_lease_is_reclaimed_by_another_worker(engine: Engine) -> None:
    """A worker that died stops renewing; after expiry another worker takes over (attempt 2)."""
    evaluation = queued(engine)
    assert ledger.claim(engine, evaluation, "w1", LEASE, now=at(1))
    assert ledger.claim(engine, evaluation, "w2", LEASE, now=at(62))
    row = state(engine, evaluation)
    assert (row.lease_owner, row.attempts) == ("w2", 2)
    assert not ledger.heartbeat(engine, evaluation, "w1", LEASE, now=at(63))


def test_same_owner_reclaims_without_counting_an_attempt(engine: Engine) -> None:
    """A worker retrying its own evaluation (after a database blip) keeps its attempt count."""
    evaluation = queued(engine)
    assert ledger.claim(engine, evaluation, "w1", LEASE, now=at(1))
    assert ledger.claim(engine, evaluation, "w1", LEASE, now=at(5))
    assert state(engine, evaluation).attempts == 1


def test_heartbeat_extends_only_the_owners_lease(engine: Engine) -> None:
    """Renewing moves the expiry; a stranger's heartbeat changes nothing."""
    evaluation = queued(engine)
    ledger.claim(engine, evaluation, "w1", LEASE, now=at(0))
    assert ledger.heartbeat(engine, evaluation, "w1", LEASE, now=at(50))
    assert not ledger.heartbeat(engine, evaluation, "w2", LEASE, now=at(51))
    assert state(engine, evaluation).lease_expires_at == at(110)
    # renewed: a duplicate delivery after the first expiry is still refused
    assert not ledger.claim(engine, evaluation, "w2", LEASE, now=at(70))


def test_finish_records_the_outcome_once(engine: Engine) -> None:
    """Finishing writes done + outcome and clears the lease; a second finish is refused."""
    evaluation = queued(engine)
    ledger.claim(engine, evaluation, "w1", LEASE, now=at(0))
    done = Finish(Outcome.PROPOSED, {"merge_request": "u"}, fingerprint="f" * 64)
    assert ledger.finish(engine, evaluation, done, owner="w1", now=at(10))
    assert not ledger.finish(engine, evaluation, Finish(Outcome.FAILED, {}), owner="w1")
    assert not ledger.claim(engine, evaluation, "w2", LEASE, now=at(100))
    row = state(engine, evaluation)
    assert (row.state, row.outcome, row.lease_owner) == (EvaluationState.DONE, "proposed", None)


def test_finish_by_a_worker_that_lost_its_lease_is_refused(engine: Engine) -> None:
    """The worker whose lease expired and was taken over cannot write the outcome."""
    evaluation = queued(engine)
    ledger.claim(engine, evaluation, "w1", LEASE, now=at(0))
    ledger.claim(engine, evaluation, "w2", LEASE, now=at(61))
    assert not ledger.finish(engine, evaluation, Finish(Outcome.NO_CHANGE, {}), owner="w1")
    assert ledger.finish(engine, evaluation, Finish(Outcome.NO_CHANGE, {}), owner="w2")


def test_max_attempts_refuses_the_claim_then_gives_up(engine: Engine) -> None:
    """Claimed max_attempts times without finishing: no further claim; give_up ends it."""
    evaluation = queued(engine)
    assert ledger.claim(engine, evaluation, "w1", LEASE, max_attempts=2, now=at(0))
    assert ledger.claim(engine, evaluation, "w2", LEASE, max_attempts=2, now=at(61))
    assert not ledger.claim(engine, evaluation, "w3", LEASE, max_attempts=2, now=at(122))
    assert ledger.give_up(engine, evaluation, "claimed 2 times", now=at(123))
    row = state(engine, evaluation)
    assert (row.state, row.outcome) == (EvaluationState.DONE, "given-up")
    assert not ledger.give_up(engine, evaluation, "again")


def test_release_puts_it_back_in_the_queue(engine: Engine) -> None:
    """A worker letting go returns the row to queued, claimable at once by anyone."""
    evaluation = queued(engine)
    ledger.claim(engine, evaluation, "w1", LEASE, now=at(0))
    assert not ledger.release(engine, evaluation, "w2", now=at(1))
    assert ledger.release(engine, evaluation, "w1", now=at(2))
    assert state(engine, evaluation).state is EvaluationState.QUEUED
    assert ledger.claim(engine, evaluation, "w2", LEASE, now=at(3))


def test_sweep_requeues_expired_leases_and_resends_stale_queued(engine: Engine) -> None:
    """Expired leases go back to queued; queued rows never claimed since long ago are resent,
    once per staleness period; live leases and fresh messages are left alone."""
    dead, live, stale, fresh = (queued(engine, name) for name in ("a", "b", "c", "d"))
    ledger.claim(engine, dead, "w-dead", LEASE, now=at(0))
    ledger.claim(engine, live, "w-live", LEASE, now=at(150))
    ledger.mark_dispatched(engine, [fresh], now=at(100))
    result = ledger.sweep(engine, stale_after_seconds=180, now=at(200))
    assert result.expired == [dead]
    assert result.stale == [stale]
    assert result.to_send == sorted([dead, stale])
    assert state(engine, dead).state is EvaluationState.QUEUED
    assert state(engine, live).state is EvaluationState.RUNNING
    again = ledger.sweep(engine, stale_after_seconds=180, now=at(205))
    assert again.to_send == []  # the resent ones were stamped; nothing else is stale yet
    later = ledger.sweep(engine, stale_after_seconds=180, now=at(400))
    assert (later.expired, later.stale) == ([live], sorted([dead, stale, fresh]))


def test_queue_once_returns_the_pending_evaluation(engine: Engine) -> None:
    """Queuing a product, window and trigger twice yields the same pending row."""
    first = queued(engine)
    assert ledger.queue_once(engine, "orders", "2026-W49", "weekly") == first
    ledger.fail(engine, first, "boom")
    assert ledger.queue_once(engine, "orders", "2026-W49", "weekly") != first


def test_claim_race_has_exactly_one_winner(engine: Engine) -> None:
    """Eight threads claim the same evaluation at once: one wins, the others are refused."""
    evaluation = queued(engine)
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        if ledger.claim(engine, evaluation, owner, LEASE):
            wins.append(owner)

    threads = [threading.Thread(target=contend, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert state(engine, evaluation).lease_owner == wins[0]
    assert state(engine, evaluation).attempts == 1


def test_finish_joins_the_callers_transaction(engine: Engine) -> None:
    """Given a session, a transition commits or rolls back with the caller's other writes."""
    evaluation = queued(engine)
    try:
        with session_scope(engine) as session:
            assert ledger.finish(session, evaluation, Finish(Outcome.NO_OP, {}))
            raise RuntimeError("the rest of the write failed")
    except RuntimeError:
        pass
    assert state(engine, evaluation).state is EvaluationState.QUEUED
    with session_scope(engine) as session:
        rows = session.exec(select(Evaluation.status)).all()
    assert rows == ["queued"]
