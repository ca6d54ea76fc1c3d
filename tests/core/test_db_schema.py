"""Migrations: they build the schema the tables describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from specfleet.core.db.engine import SCHEMA_HEAD, current_revision, head_revision


def test_schema_head_constant_matches_alembic() -> None:
    """The fast "is the schema current" check uses the same head as Alembic's scripts."""
    assert head_revision() == SCHEMA_HEAD


def test_migrations_match_the_tables(engine: Engine) -> None:
    """After upgrading, autogenerate finds no difference between tables and database."""
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []
    tables = set(inspect(engine).get_table_names())
    assert {
        "product",
        "policy_set",
        "policy_rule",
        "evaluation",
        "stage_result",
        "proposal",
        "merge_request",
        "audit_entry",
    } <= tables
