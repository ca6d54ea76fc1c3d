"""Alembic environment: runs migrations on the engine specfleet passes in its config."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import specfleet.core.db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER columns
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
