"""Engines, sessions and schema migration for SQLite (embedded) and PostgreSQL (fleet)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from specfleet.core.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision. Kept here so that every command can tell whether the
# schema is current without importing Alembic (a third of a second); a test keeps it equal
# to Alembic's own head.
SCHEMA_HEAD = "0009"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web console read while a worker writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    """Alembic's head revision, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    return script.get_current_head()


def one_line(error: object) -> str:
    """A driver's message on one line (psycopg adds an indented hint on a second one)."""
    return " ".join(str(error).split())


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None for a database specfleet never migrated."""
    try:
        with engine.connect() as connection:
            if not engine.dialect.has_table(connection, "alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as error:
        # `specfleet db upgrade/status` ask this first: an unreachable server is exit 2, not a
        # traceback
        raise DatabaseError(
            f"cannot reach the database {safe_url(engine)}: {one_line(error.orig)}"
        ) from error


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic); safe to call on an up-to-date database."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as error:
        raise DatabaseError(f"cannot migrate {safe_url(engine)}: {one_line(error.orig)}") from error
    except SQLAlchemyError as error:
        raise DatabaseError(f"cannot migrate {safe_url(engine)}: {error}") from error


_migrated: set[str] = set()


def ensure_schema(engine: Engine) -> None:
    """Upgrade once per process and database, only when the schema is behind."""
    key = str(engine.url)
    if key in _migrated:
        return
    try:
        behind = current_revision(engine) != SCHEMA_HEAD
    except OperationalError as error:
        raise DatabaseError(
            f"cannot reach the database {safe_url(engine)}: {one_line(error.orig)}"
        ) from error
    if behind:
        upgrade(engine)
    _migrated.add(key)


def safe_url(engine: Engine) -> str:
    """The engine's URL with any password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on any error: nothing half-written."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
