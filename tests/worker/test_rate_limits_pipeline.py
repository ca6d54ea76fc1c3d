"""Rate limits and automerge on a real evaluation of the orders example (real build, tests,
verification, local forge): a proposal over the limit waits with its real evidence, goes out
when released, and its real description is read back correctly for the owner and automerge."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session, select

from specfleet.core.db import Product, Proposal, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.settings import get_settings
from specfleet.worker.automerge import run_automerge
from specfleet.worker.pipeline.deferral import release_deferred
from specfleet.worker.review import review_facts
from tests.worker.test_pipeline import Fleet, caches, fleet, index_url  # noqa: F401


def test_a_deferred_real_proposal_is_released_and_judged_from_its_evidence(
    fleet: Fleet,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Limit 0: orders is proposed but its merge request waits; limit 5: released with the
    same description; its evidence reads green and identical; a minor upgrade (requests
    2.28.2 -> 2.31.0) keeps it out of security-patch automerge."""
    monkeypatch.setenv("SPECFLEET_MR_HOURLY_LIMIT", "0")
    get_settings.cache_clear()
    result = fleet.evaluate("orders")
    assert result.outcome == "proposed", (result.error, result.summary.get("verification"))
    assert "merge request deferred" in result.reason
    assert fleet.merge_requests("orders") == []
    with Session(fleet.engine) as session:
        [proposal] = session.exec(select(Proposal).where(Proposal.product_id == "orders")).all()
    assert proposal.state == "deferred" and proposal.priority["tier"] == "security fix"

    facts = review_facts(proposal.description, proposal.changes)
    assert facts.green and facts.contract == "identical" and facts.data == "identical"
    assert facts.deterministic and facts.dependency_files == ("requirements.txt",)

    monkeypatch.setenv("SPECFLEET_MR_HOURLY_LIMIT", "5")
    get_settings.cache_clear()
    [released] = release_deferred(fleet.engine, lambda _p: fleet.forge)
    assert released.product_id == "orders"
    [mr] = fleet.merge_requests("orders")
    assert mr.state == "open" and mr.description == proposal.description
    assert mr.proposal_key == proposal.key

    with session_scope(fleet.engine) as session:
        product = session.get(Product, "orders")
        assert product is not None
        product.automerge = "security-patch"
        session.add(product)
    [outcome] = run_automerge(
        fleet.engine, fleet.forge, dt.timedelta(hours=1), now=utcnow() + dt.timedelta(hours=2)
    )
    assert not outcome.merged
    assert "requests 2.28.2 -> 2.31.0 is not a patch-level upgrade" in outcome.reasons
