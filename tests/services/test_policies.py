"""Publishing a policy pack queues the affected products once, and sends them unless paused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import Evaluation
from specfleet.core.errors import InputError
from specfleet.policies.store import list_policy_sets
from specfleet.scheduler.pause import pause_fleet
from specfleet.services.policies import bundled_packs, pack_folder, publish_policy_pack
from tests.services.conftest import spec_pack


def evaluations(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(Evaluation).order_by(Evaluation.id)).all()
        return [(row.product_id, row.trigger, row.status) for row in rows]


def test_publish_queues_and_dispatches_the_affected_products(
    db: Engine, invoices: Path, tmp_path: Path
) -> None:
    """A new policy set queues a policy evaluation of each affected product and sends it."""
    sent: list[list[int]] = []
    result = publish_policy_pack(
        db, spec_pack(tmp_path / "pack"), " first ", "arch@example.com", dispatch=sent.append
    )
    assert result.outcome.created and result.outcome.policy_set.version == 1
    assert result.affected == ("invoices",)
    assert (result.queued, result.already_queued, result.paused) == (1, 0, False)
    assert evaluations(db) == [("invoices", "policy", "queued")]
    assert len(sent) == 1 and len(sent[0]) == 1
    ((record, _count),) = list_policy_sets(db)
    assert (record.published_by, record.message) == ("arch@example.com", "first")


def test_publishing_the_same_content_again_queues_nothing(
    db: Engine, invoices: Path, tmp_path: Path
) -> None:
    pack = spec_pack(tmp_path / "pack")
    publish_policy_pack(db, pack, "first", "arch@example.com")
    sent: list[list[int]] = []
    again = publish_policy_pack(db, pack, "again", "arch@example.com", dispatch=sent.append)
    assert not again.outcome.created and again.outcome.policy_set.version == 1
    assert (again.affected, again.queued, sent) == ((), 0, [])
    assert len(evaluations(db)) == 1


def test_while_paused_the_evaluations_wait_in_the_queue(
    db: Engine, invoices: Path, tmp_path: Path
) -> None:
    """Paused: recorded as queued but not sent; the result says the fleet is paused."""
    pause_fleet(db, "ops@example.com", "upgrade")
    sent: list[list[int]] = []
    result = publish_policy_pack(
        db, spec_pack(tmp_path / "pack"), "first", "arch@example.com", dispatch=sent.append
    )
    assert (result.queued, result.paused, sent) == (1, True, [])
    assert evaluations(db) == [("invoices", "policy", "queued")]


def test_a_publication_needs_a_message_and_publishes_nothing_without(
    db: Engine, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="say why"):
        publish_policy_pack(db, spec_pack(tmp_path / "pack"), "  ", "arch@example.com")
    assert list_policy_sets(db) == []


def test_a_pack_is_a_bundled_name_or_an_absolute_folder(tmp_path: Path) -> None:
    assert {"v1", "v2"} <= set(bundled_packs())
    assert pack_folder("v1").name == "v1" and (pack_folder("v1") / "rules").is_dir()
    own = spec_pack(tmp_path / "own")
    assert pack_folder(str(own)) == own
    with pytest.raises(InputError, match="neither a bundled pack"):
        pack_folder("relative/pack")
