"""Shared fixtures: an isolated SPECFLEET_HOME, real git repositories, SQLite and PostgreSQL.

PostgreSQL and Redis: ``SPECFLEET_TEST_POSTGRES_URL`` / ``SPECFLEET_TEST_REDIS_URL`` name
existing servers; unset, the session starts its own throwaway ones on free ports the first
time a test needs them (tests/support/servers.py) and removes them at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.settings import get_settings
from tests.support.servers import ServerUnavailable, ThrowawayPostgres, ThrowawayRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(autouse=True)
def specfleet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own home, so nothing leaks between tests or into the checkout."""
    home = tmp_path / "home"
    for name in list(os.environ):
        if name.startswith("SPECFLEET_") and not name.startswith("SPECFLEET_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPECFLEET_HOME", str(home))
    monkeypatch.setenv("SPECFLEET_ACTOR", "tester@example.com")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fresh_logging() -> Iterator[None]:
    """A test that configures logging (a CLI run in-process, a service) leaves no trace behind.

    Without this, a logger configured with one test's captured stream keeps writing to it
    after pytest has closed it, and an unrelated later test fails on a closed file.
    """
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    logging.captureWarnings(False)  # a service configuration routes warnings into logging
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)


RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Create a real git repository with the given files committed on a branch."""

    def factory(
        files: dict[str, str | bytes] | None = None,
        source: Path | None = None,
        name: str = "product",
        branch: str = "main",
    ) -> Path:
        path = tmp_path / "repos" / name
        if source is not None:
            shutil.copytree(source, path, ignore=shutil.ignore_patterns("__pycache__", "out"))
        path.mkdir(parents=True, exist_ok=True)
        for relative, content in (files or {}).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        repo = git.Repo.init(path, initial_branch=branch)
        with repo.config_writer() as config:
            config.set_value("user", "name", "Test Author")
            config.set_value("user", "email", "author@example.com")
        repo.git.add(A=True)
        repo.index.commit("initial commit")
        repo.close()
        return path

    return factory


def commit_files(repo_path: Path, files: dict[str, str], message: str = "change") -> str:
    repo = git.Repo(repo_path)
    for relative, content in files.items():
        target = repo_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    repo.git.add(A=True)
    sha = repo.index.commit(message).hexsha
    repo.close()
    return sha


POSTGRES_URL_VARIABLE = "SPECFLEET_TEST_POSTGRES_URL"
REDIS_URL_VARIABLE = "SPECFLEET_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """An administrative URL of the session's PostgreSQL: the configured one, else our own.

    The throwaway server's URL is exported as SPECFLEET_TEST_POSTGRES_URL for the rest of the
    session, so subprocesses and helpers that read the variable find the same server.
    """
    configured = os.environ.get(POSTGRES_URL_VARIABLE)
    if configured:
        yield configured
        return
    server = ThrowawayPostgres()
    try:
        server.start()
    except ServerUnavailable as error:
        server.remove()
        pytest.fail(f"cannot start a throwaway PostgreSQL for the tests: {error}")
    os.environ[POSTGRES_URL_VARIABLE] = server.admin_url
    try:
        yield server.admin_url
    finally:
        os.environ.pop(POSTGRES_URL_VARIABLE, None)
        server.remove()


@pytest.fixture(scope="session")
def redis_session_url() -> Iterator[str]:
    """The session's Redis: SPECFLEET_TEST_REDIS_URL, else a throwaway server of our own."""
    configured = os.environ.get(REDIS_URL_VARIABLE)
    if configured:
        yield configured
        return
    server = ThrowawayRedis()
    try:
        server.start()
    except ServerUnavailable as error:
        server.remove()
        pytest.fail(f"cannot start a throwaway Redis for the tests: {error}")
    url = server.url.rsplit("/", 1)[0] + "/15"
    os.environ[REDIS_URL_VARIABLE] = url
    try:
        yield url
    finally:
        os.environ.pop(REDIS_URL_VARIABLE, None)
        server.remove()


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    An unreachable server fails the test loudly.
    """
    admin_url = postgres_admin_url
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"specfleet_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        pytest.fail(f"PostgreSQL is not reachable at {admin_url}: {error}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both supported databases: SQLite in the test's home and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


SPECFLEET = str(Path(sys.executable).with_name("specfleet"))


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``specfleet`` console script, as a user would."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 300,
    ):
        return subprocess.run(
            [SPECFLEET, *args],
            capture_output=True,
            text=True,
            cwd=cwd or tmp_path,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
            timeout=timeout,
        )

    return run


@pytest.fixture
def redis_url(redis_session_url: str) -> str:
    """The Redis server the tests use; an unreachable server fails the test loudly."""
    import redis

    url = redis_session_url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {url}: {error}")
    return url
