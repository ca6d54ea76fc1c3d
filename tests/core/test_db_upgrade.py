"""`specfleet db upgrade` migrates a database of the previous release, and an empty one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData, insert, inspect
from sqlmodel import select

from specfleet.core.db import (
    AuditEntry,
    ComplianceRecord,
    Evaluation,
    LLMCall,
    MergeRequest,
    PolicyRuleRecord,
    PolicySetRecord,
    Product,
    Proposal,
    StageResult,
    make_engine,
    session_scope,
    upgrade,
)
from specfleet.core.db.engine import SCHEMA_HEAD, current_revision, head_revision

PREVIOUS_RELEASE = "0001"
T0 = dt.datetime(2026, 11, 16, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the previous release's schema, filled the way that release filled it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'previous-release.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    try:
        upgrade(engine, PREVIOUS_RELEASE)
        fill_previous_release(engine)
    finally:
        engine.dispose()
    return url


def fill_previous_release(engine: Engine) -> None:
    """Rows as the 0001 schema holds them (only its columns: no attempts, draft, labels ...)."""
    metadata = MetaData()
    metadata.reflect(engine)
    tables = metadata.tables
    assert "attempts" not in tables["evaluation"].c  # really the old schema
    with engine.begin() as connection:
        for product in ("orders", "customer_revenue"):
            connection.execute(
                insert(tables["product"]).values(
                    id=product,
                    name=product.replace("_", " ").title(),
                    repo_url=f"https://gitlab.example.com/data/{product}.git",
                    branch="main",
                    spec_path="dataproduct.yaml",
                    forge="gitlab",
                    forge_project=f"data/{product}",
                    owners=["ana@example.com"],
                    tags=["finance", "tier-1"],
                    runtime="python3.11",
                    spec_commit="a" * 40,
                    spec_hash="b" * 40,
                    registration_hash="c" * 64,
                    active=True,
                    registered_by="platform@example.com",
                    registered_at=T0,
                    updated_at=T0,
                )
            )
        connection.execute(
            insert(tables["policy_set"]).values(
                version=1,
                content_hash="d" * 64,
                message="default pack v1",
                published_by="architect@example.com",
                published_at=T0,
            )
        )
        connection.execute(
            insert(tables["policy_rule"]).values(
                policy_set_version=1,
                rule_id="ORG-PY-004",
                kind="dependency",
                severity="high",
                title="pandas 2 or newer",
                body={"minimum": {"pandas": "2.0"}, "why": "pandas 1.x is out of support"},
            )
        )
        evaluations = [
            {"product_id": "orders", "status": "done", "outcome": "published"},
            {"product_id": "customer_revenue", "status": "done", "outcome": "no-op"},
            {"product_id": "orders", "status": "queued", "outcome": None},
        ]
        # ids come from the database's own sequence, as the previous release's inserts did
        evaluation_ids = []
        for number, row in enumerate(evaluations, start=1):
            inserted = connection.execute(
                insert(tables["evaluation"]).values(
                    **row,
                    window="2026-W47" if number < 3 else "2026-W48",
                    trigger="weekly",
                    fingerprint=f"fp{number}",
                    policy_set_version=1,
                    spec_commit="a" * 40,
                    queued_at=T0,
                    started_at=T0 if row["status"] == "done" else None,
                    finished_at=T0 if row["status"] == "done" else None,
                    summary={"changes": 1} if row["outcome"] == "published" else None,
                )
            )
            evaluation_ids.append(inserted.inserted_primary_key[0])
        connection.execute(
            insert(tables["stage_result"]).values(
                evaluation_id=evaluation_ids[0],
                stage="verify",
                outcome="ok",
                started_at=T0,
                duration_ms=41_200,
                detail={"tests": "12 passed"},
            )
        )
        proposal = connection.execute(
            insert(tables["proposal"]).values(
                product_id="orders",
                evaluation_id=evaluation_ids[0],
                key="e" * 64,
                title="pandas 1.5.3 → 2.2.3 (ORG-PY-004)",
                description="## Why\nORG-PY-004",
                changes={"pandas": ["1.5.3", "2.2.3"]},
                state="proposed",
                created_at=T0,
            )
        )
        connection.execute(
            insert(tables["merge_request"]).values(
                product_id="orders",
                proposal_id=proposal.inserted_primary_key[0],
                forge="gitlab",
                forge_ref="42",
                url="https://gitlab.example.com/data/orders/-/merge_requests/42",
                branch="specfleet/evergreen",
                title="pandas 1.5.3 → 2.2.3 (ORG-PY-004)",
                description="evidence tables",
                state="open",
                approvals=["ana@example.com"],
                created_at=T0,
                updated_at=T0,
            )
        )
        connection.execute(
            insert(tables["audit_entry"]).values(
                at=T0,
                actor="platform@example.com",
                action="product.register",
                subject_type="product",
                subject_id="orders",
                detail={"repo_url": "https://gitlab.example.com/data/orders.git"},
            )
        )
        connection.execute(
            insert(tables["compliance"]).values(
                product_id="orders",
                policy_set_version=1,
                rule_id="ORG-PY-004",
                status="fail",
                findings=1,
                window="2026-W47",
                checked_at=T0,
            )
        )


def test_upgrade_keeps_every_row_of_the_previous_release(cli, old_database: str) -> None:  # type: ignore[no-untyped-def]
    """The CLI migrates a 0001 database to head; rows survive and new columns get defaults."""
    result = cli("db", "upgrade", env={"SPECFLEET_DATABASE_URL": old_database})
    assert result.returncode == 0, result.stderr
    assert f"migrated from {PREVIOUS_RELEASE} to {SCHEMA_HEAD}" in result.stdout

    engine = make_engine(old_database)
    try:
        assert current_revision(engine) == SCHEMA_HEAD == head_revision()
        with session_scope(engine) as session:
            products = session.exec(select(Product).order_by(Product.id)).all()  # type: ignore[arg-type]
            assert [p.id for p in products] == ["customer_revenue", "orders"]
            orders = session.get(Product, "orders")
            assert orders is not None
            assert orders.owners == ["ana@example.com"] and orders.tags == ["finance", "tier-1"]
            assert orders.forge_project == "data/orders" and orders.registered_at == T0

            evaluations = session.exec(select(Evaluation).order_by(Evaluation.id)).all()  # type: ignore[arg-type]
            assert [(e.product_id, e.status, e.outcome) for e in evaluations] == [
                ("orders", "done", "published"),
                ("customer_revenue", "done", "no-op"),
                ("orders", "queued", None),
            ]
            assert all(e.attempts == 0 for e in evaluations)
            assert evaluations[0].summary == {"changes": 1}

            (mr,) = session.exec(select(MergeRequest)).all()
            assert (mr.forge_ref, mr.state, mr.approvals) == ("42", "open", ["ana@example.com"])
            # columns the new release added, filled with their defaults
            assert mr.target_branch == "main"
            assert mr.draft is False and mr.labels == []
            assert mr.head_commit is None and mr.proposal_key is None

            (proposal,) = session.exec(select(Proposal)).all()
            assert proposal.changes == {"pandas": ["1.5.3", "2.2.3"]}
            (stage,) = session.exec(select(StageResult)).all()
            assert (stage.stage, stage.duration_ms) == ("verify", 41_200)
            (rule,) = session.exec(select(PolicyRuleRecord)).all()
            assert rule.body["minimum"] == {"pandas": "2.0"}
            assert len(session.exec(select(PolicySetRecord)).all()) == 1
            assert len(session.exec(select(AuditEntry)).all()) >= 1
            assert len(session.exec(select(ComplianceRecord)).all()) == 1
            # a table the new release added is there, empty and usable
            assert session.exec(select(LLMCall)).all() == []
            session.add(
                Evaluation(product_id="orders", window="2026-W49", trigger="manual", attempts=1)
            )
    finally:
        engine.dispose()

    again = cli("db", "upgrade", env={"SPECFLEET_DATABASE_URL": old_database})
    assert again.returncode == 0 and "up to date" in again.stdout


@pytest.mark.postgres
def test_upgrade_creates_the_schema_in_an_empty_postgresql(cli, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    """An empty PostgreSQL database gets every table at the newest revision."""
    status = cli("db", "status", env={"SPECFLEET_DATABASE_URL": postgres_url})
    assert status.returncode == 0 and "revision none" in status.stdout

    result = cli("db", "upgrade", env={"SPECFLEET_DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    assert "migrated from an empty database" in result.stdout

    engine = make_engine(postgres_url)
    try:
        assert current_revision(engine) == SCHEMA_HEAD
        tables = set(inspect(engine).get_table_names())
        expected = {
            "product",
            "policy_set",
            "policy_rule",
            "evaluation",
            "stage_result",
            "proposal",
            "merge_request",
            "audit_entry",
            "compliance",
            "llm_call",
        }
        assert expected <= tables
    finally:
        engine.dispose()
    # the password-less URL prints as given; nothing secret to hide here
    assert "error" not in result.stderr.lower()


def test_unreachable_database_is_an_environment_error(cli) -> None:  # type: ignore[no-untyped-def]
    """Upgrading a database that cannot be reached exits 2 naming it, password hidden."""
    url = "postgresql+psycopg://specfleet:s3cret-pw@127.0.0.1:1/specfleet"
    result = cli("db", "upgrade", env={"SPECFLEET_DATABASE_URL": url})
    assert result.returncode == 2
    assert "127.0.0.1" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
