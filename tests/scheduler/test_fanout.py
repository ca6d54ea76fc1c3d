"""Fan-out: batched, idempotent queuing of a window's evaluations, dispatched after commit."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.core.db import Evaluation, Product, session_scope
from specfleet.core.settings import Settings
from specfleet.scheduler.beat import window_lock
from specfleet.scheduler.due import Schedule
from specfleet.scheduler.fanout import (
    fan_out_window,
    queue_policy_evaluations,
    queued_evaluation_ids,
    window_progress,
)

SCHEDULE = Schedule.from_config("0 6 * * 1", "UTC")


def register(engine: Engine, count: int, removed: Sequence[str] = ()) -> list[str]:
    ids = [f"product-{n:05d}" for n in range(count)]
    with session_scope(engine) as session:
        for product_id in ids:
            session.add(
                Product(
                    id=product_id,
                    name=product_id,
                    repo_url=f"/repos/{product_id}",
                    active=product_id not in removed,
                )
            )
    return ids


def window_rows(engine: Engine, window: str) -> list[Evaluation]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Evaluation).where(Evaluation.window == window).order_by(col(Evaluation.id))
            ).all()
        )


class Recorder:
    """Collects dispatched batches and checks each row is committed when it is dispatched."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.batches: list[list[int]] = []

    def __call__(self, ids: Sequence[int]) -> None:
        with session_scope(self.engine) as session:  # a separate session: only committed rows
            found = session.exec(select(Evaluation.id).where(col(Evaluation.id).in_(ids))).all()
        assert sorted(id_ for id_ in found if id_ is not None) == sorted(ids)
        self.batches.append(list(ids))


def test_window_fan_out_queues_every_due_product_in_batches(engine: Engine) -> None:
    """Each active product gets one queued weekly evaluation; batches are dispatched once committed."""
    ids = register(engine, 25, removed=["product-00003"])
    recorder = Recorder(engine)
    result = fan_out_window(engine, SCHEDULE, "2026-W48", None, recorder, batch_size=10)
    assert [len(batch) for batch in recorder.batches] == [10, 10, 4]
    assert sorted(id_ for batch in recorder.batches for id_ in batch) == sorted(result.queued)
    rows = window_rows(engine, "2026-W48")
    assert sorted(row.product_id for row in rows) == sorted(set(ids) - {"product-00003"})
    assert {(row.trigger, row.status) for row in rows} == {("weekly", "queued")}
    assert result.skipped == 1
    assert window_progress(engine, "2026-W48") == {"queued": 24}


def test_window_fan_out_is_idempotent(engine: Engine) -> None:
    """A second fan-out of the same window queues and dispatches nothing."""
    register(engine, 5)
    fan_out_window(engine, SCHEDULE, "2026-W48", None, None)
    recorder = Recorder(engine)
    again = fan_out_window(engine, SCHEDULE, "2026-W48", None, recorder)
    assert again.queued == [] and recorder.batches == []
    assert len(window_rows(engine, "2026-W48")) == 5


def test_policy_publish_queues_and_dispatches(engine: Engine) -> None:
    """queue_policy_evaluations writes policy rows and, given a dispatcher, sends them."""
    register(engine, 3)
    recorder = Recorder(engine)
    today = dt.date(2026, 11, 25)
    assert (
        queue_policy_evaluations(engine, ["product-00000", "product-00002"], 7, today, recorder)
        == 2
    )
    assert queue_policy_evaluations(engine, ["product-00000"], 7, today, recorder) == 0
    rows = window_rows(engine, "2026-W48")
    assert {(row.product_id, row.trigger, row.policy_set_version) for row in rows} == {
        ("product-00000", "policy", 7),
        ("product-00002", "policy", 7),
    }
    assert recorder.batches == [[row.id for row in rows]]
    assert queued_evaluation_ids(engine, trigger="policy", policy_set_version=7) == [
        row.id for row in rows
    ]


def test_pause_mid_publication_fan_out_holds_the_remaining_batches(engine: Engine) -> None:
    """A pause landing during a publication's fan-out: every affected product is still recorded
    as queued (the sweep sends them on resume), nothing after the pause is sent."""
    from specfleet.scheduler.pause import fleet_paused, pause_fleet

    ids = register(engine, 25)
    recorder = Recorder(engine)

    def send_then_pause(batch: Sequence[int]) -> None:
        recorder(batch)
        pause_fleet(engine, "ops@example.com", "incident")

    queued = queue_policy_evaluations(
        engine,
        ids,
        9,
        dt.date(2026, 11, 25),
        send_then_pause,
        pause_check=lambda: fleet_paused(engine) is not None,
    )
    assert queued == 25
    assert [len(batch) for batch in recorder.batches] == [25]  # one batch of DEFAULT_BATCH
    rows = window_rows(engine, "2026-W48")
    assert len(rows) == 25 and {row.status for row in rows} == {"queued"}


def test_paused_window_fan_out_sends_nothing_after_the_pause(engine: Engine) -> None:
    """A window fan-out of 3 batches paused after the first: 1 batch sent, all 25 recorded."""
    from specfleet.scheduler.pause import fleet_paused, pause_fleet

    register(engine, 25)
    recorder = Recorder(engine)

    def send_then_pause(batch: Sequence[int]) -> None:
        recorder(batch)
        pause_fleet(engine, "ops@example.com", "incident")

    result = fan_out_window(
        engine,
        SCHEDULE,
        "2026-W48",
        None,
        send_then_pause,
        batch_size=10,
        pause_check=lambda: fleet_paused(engine) is not None,
    )
    assert [len(batch) for batch in recorder.batches] == [10]
    assert len(result.queued) == 25


def test_two_schedulers_with_the_window_lock_queue_each_product_once(
    engine: Engine, specfleet_home: object
) -> None:
    """Concurrent fan-outs of one window, each under the embedded file lock, never duplicate."""
    register(engine, 200)
    settings = Settings()
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            with window_lock(settings, "2026-W48") as acquired:
                assert acquired
                fan_out_window(engine, SCHEDULE, "2026-W48", None, None, batch_size=50)
        except BaseException as error:  # surfaced below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=scheduler) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = window_rows(engine, "2026-W48")
    assert len(rows) == 200 and len({row.product_id for row in rows}) == 200


@pytest.mark.redis
def test_redis_window_lock_excludes_a_second_holder(redis_url: str) -> None:
    """In fleet mode a second scheduler cannot take the window lock while the first holds it."""
    settings = Settings(redis_url=redis_url)
    with window_lock(settings, "2099-W01") as first:
        assert first
        with window_lock(settings, "2099-W01", wait_seconds=0.2) as second:
            assert not second
    with window_lock(settings, "2099-W01", wait_seconds=0.2) as later:
        assert later
