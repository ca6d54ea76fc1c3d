"""What every command shares: consoles, wiring from settings, and errors -> exit codes.

Exit codes (documented in the README):
0  success;
1  the input was understood and is invalid or refused (an invalid spec, a conflicting
   registration, some rows of an import rejected);
2  usage, I/O or environment error (bad arguments, a missing file, an unreachable repository
   or database).
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from specfleet.core.errors import (
    ConfigurationError,
    DatabaseError,
    DocumentInvalid,
    InputError,
    RegistryError,
    RepositoryError,
    SpecfleetError,
    SpecInvalid,
    SpecMissing,
)
from specfleet.core.settings import Settings, get_settings

if TYPE_CHECKING:
    # the backends are imported where they are built: `specfleet health` needs no database
    # layer and `specfleet --help` none of them
    from sqlalchemy import Engine

    from specfleet.core.git import MirrorCache
    from specfleet.core.health.advisories import AdvisorySource
    from specfleet.core.health.releases import IndexClient

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def exit_code_for(error: SpecfleetError) -> int:
    if isinstance(error, DocumentInvalid | SpecMissing | RegistryError):
        return EXIT_INVALID
    if isinstance(error, InputError | RepositoryError | DatabaseError | ConfigurationError):
        return EXIT_USAGE
    return EXIT_USAGE


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def print_spec_problems(error: DocumentInvalid) -> None:
    for problem in error.problems:
        err_console.print(problem.render(), markup=False, soft_wrap=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn specfleet errors into one readable message and the documented exit code."""
    try:
        yield
    except DocumentInvalid as error:
        what = "the spec at" if isinstance(error, SpecInvalid) else "the policy pack at"
        err_console.print(f"[bold red]error:[/] {what} {error.source} is invalid:")
        print_spec_problems(error)
        raise typer.Exit(EXIT_INVALID) from None
    except SpecfleetError as error:
        fail(str(error), exit_code_for(error))
    except Exception as error:
        from sqlalchemy.exc import OperationalError  # loaded already when a database was used

        if not isinstance(error, OperationalError):
            raise
        from specfleet.core.db.engine import one_line

        # the database went away after the command connected: one line, exit 2 (environment)
        fail(f"cannot reach the database: {one_line(error.orig or error)}", EXIT_USAGE)


@dataclass
class Wiring:
    """Backends chosen from settings; the only place that decides which implementation runs."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        from specfleet.core.db import ensure_schema, make_engine

        engine = make_engine(self.settings.resolved_database_url)
        ensure_schema(engine)
        return engine

    @cached_property
    def mirrors(self) -> MirrorCache:
        from specfleet.core.git import MirrorCache

        return MirrorCache(self.settings.mirrors_dir, self.settings.git_timeout_seconds)

    def index_client(self, url: str | None = None) -> IndexClient:
        """Release facts (one wiring for workers and commands: specfleet.worker.pipeline.wiring)."""
        from specfleet.worker.wiring import index_client

        return index_client(self.settings, url)

    def advisory_source(
        self, directory: Path | None = None, pip_audit: bool = False, osv_url: str | None = None
    ) -> AdvisorySource:
        """The configured advisory source; explicit arguments win over settings."""
        from specfleet.worker.wiring import advisory_source

        return advisory_source(self.settings, directory, pip_audit, osv_url, refreshing=False)


def wiring() -> Wiring:
    settings = get_settings()
    from specfleet.core.log import configure_logging

    configure_logging(settings)
    return Wiring(settings)


def current_actor() -> str:
    """Who is acting, for the audit log: SPECFLEET_ACTOR, else the login name."""
    explicit = os.environ.get("SPECFLEET_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def guarded(function: Callable[[], None]) -> None:
    with reported_errors():
        function()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
