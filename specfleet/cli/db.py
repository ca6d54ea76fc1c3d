"""``specfleet db``: bring the database schema up to date (Alembic)."""

from __future__ import annotations

import typer

from specfleet.cli.common import console, reported_errors
from specfleet.core.db import make_engine
from specfleet.core.db import upgrade as upgrade_schema
from specfleet.core.db.engine import current_revision, head_revision, safe_url
from specfleet.core.settings import get_settings

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Migrate the configured database to the newest schema (safe to repeat)."""
    with reported_errors():
        engine = make_engine(get_settings().resolved_database_url)
        before = current_revision(engine)
        upgrade_schema(engine)
        after = current_revision(engine)
    where = safe_url(engine)
    if before == after:
        console.print(f"{where} is up to date (revision {after})")
    else:
        console.print(f"{where}: migrated from {before or 'an empty database'} to {after}")


@app.command()
def status() -> None:
    """Show the database's schema revision and the newest one this release knows."""
    with reported_errors():
        engine = make_engine(get_settings().resolved_database_url)
        current = current_revision(engine)
    console.print(f"{safe_url(engine)}: revision {current or 'none'} (newest: {head_revision()})")
