"""Manual evaluations (pause-aware, forcible, audited) and amendment requests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import AmendmentRequest, AuditEntry, Evaluation
from specfleet.core.errors import FleetPaused, InputError, ProductNotFound
from specfleet.scheduler.pause import pause_fleet
from specfleet.services.evaluations import request_amendment, request_evaluation


class Refused(Exception):
    pass


def rows(engine: Engine, kind: type) -> list:  # type: ignore[type-arg]
    with Session(engine) as session:
        return list(session.exec(select(kind)).all())


def test_a_manual_evaluation_is_queued_once_and_audited(db: Engine, invoices: Path) -> None:
    first = request_evaluation(db, "ana@example.com", "invoices", window="2026-W48")
    again = request_evaluation(db, "raj@example.com", "invoices", window="2026-W48")
    assert again.evaluation_id == first.evaluation_id
    assert (first.product_id, first.window, first.trigger) == ("invoices", "2026-W48", "manual")
    (evaluation,) = rows(db, Evaluation)
    assert (evaluation.status, evaluation.trigger) == ("queued", "manual")
    audited = [
        (entry.actor, entry.action, entry.detail["evaluation"])
        for entry in rows(db, AuditEntry)
        if entry.action == "evaluation.requested"
    ]
    assert audited == [
        ("ana@example.com", "evaluation.requested", first.evaluation_id),
        ("raj@example.com", "evaluation.requested", first.evaluation_id),
    ]


def test_while_paused_it_is_refused_unless_forced(db: Engine, invoices: Path) -> None:
    pause_fleet(db, "ops@example.com", "GitLab upgrade")
    with pytest.raises(FleetPaused, match=r"paused by ops@example\.com .*GitLab upgrade"):
        request_evaluation(db, "ana@example.com", "invoices")
    assert rows(db, Evaluation) == []
    forced = request_evaluation(db, "ana@example.com", "invoices", force=True)
    assert [row.id for row in rows(db, Evaluation)] == [forced.evaluation_id]


def test_the_callers_check_sees_the_owners_and_can_refuse(db: Engine, invoices: Path) -> None:
    seen: list[tuple[str, Sequence[str]]] = []

    def refuse(product_id: str, owners: Sequence[str]) -> None:
        seen.append((product_id, owners))
        raise Refused

    with pytest.raises(Refused):
        request_evaluation(db, "eve@example.com", "invoices", authorize=refuse)
    assert seen == [("invoices", ["ana@example.com", "raj@example.com"])]
    assert rows(db, Evaluation) == []


def test_an_unknown_product_or_week_is_refused(db: Engine, invoices: Path) -> None:
    with pytest.raises(ProductNotFound, match="no product 'ghost'"):
        request_evaluation(db, "ana@example.com", "ghost")
    with pytest.raises(InputError):
        request_evaluation(db, "ana@example.com", "invoices", window="week 48")
    assert rows(db, Evaluation) == []


def test_an_amendment_needs_an_llm_and_is_recorded_with_its_evaluation(
    db: Engine, invoices: Path
) -> None:
    ask = ("invoices", "Count each invoice's lines.", "finance asked")
    with pytest.raises(InputError, match="no endpoint is configured"):
        request_amendment(db, "ana@example.com", *ask, llm_configured=False)
    assert rows(db, AmendmentRequest) == [] and rows(db, Evaluation) == []
    queued = request_amendment(db, "ana@example.com", *ask, llm_configured=True)
    (request,) = rows(db, AmendmentRequest)
    (evaluation,) = rows(db, Evaluation)
    assert (request.id, request.requested_by, request.why) == (
        queued.request_id,
        "ana@example.com",
        "finance asked",
    )
    assert (evaluation.id, evaluation.trigger) == (queued.evaluation_id, "amendment")
