"""The publish-and-queue use case on PostgreSQL (the other use cases run on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import Evaluation, ensure_schema, make_engine
from specfleet.core.git import MirrorCache
from specfleet.core.registry import Registration
from specfleet.services.evaluations import request_evaluation
from specfleet.services.policies import publish_policy_pack
from specfleet.services.products import register_product
from tests.conftest import RepoFactory
from tests.services.conftest import PLATFORM, VALID_SPEC, spec_pack


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_register_publish_and_request_on_postgresql(
    postgres: Engine, make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo({"dataproduct.yaml": VALID_SPEC}, name="invoices")
    mirrors = MirrorCache(tmp_path / "mirrors")
    assert register_product(postgres, mirrors, PLATFORM, Registration(repo=str(repo))).status == (
        "added"
    )
    sent: list[list[int]] = []
    published = publish_policy_pack(
        postgres, spec_pack(tmp_path / "pack"), "first", "arch@example.com", dispatch=sent.append
    )
    assert (published.affected, published.queued) == (("invoices",), 1)
    manual = request_evaluation(postgres, "ana@example.com", "invoices")
    with Session(postgres) as session:
        triggers = sorted(row.trigger for row in session.exec(select(Evaluation)))
    assert triggers == ["manual", "policy"] and sent and manual.evaluation_id not in sent[0]
