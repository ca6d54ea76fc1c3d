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

from core.errors import (
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
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    # the backends are imported where they are built: `specfleet health` needs no database
    # layer and `specfleet --help` none of them
    from sqlalchemy import Engine

    from core.git import MirrorCache
    from core.health.advisories import AdvisorySource
    from core.health.releases import IndexClient

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


@dataclass
class Wiring:
    """Backends chosen from settings; the only place that decides which implementation runs."""

    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        from core.db import ensure_schema, make_engine

        engine = make_engine(self.settings.resolved_database_url)
        ensure_schema(engine)
        return engine

    @cached_property
    def mirrors(self) -> MirrorCache:
        from core.git import MirrorCache

        return MirrorCache(self.settings.mirrors_dir, self.settings.git_timeout_seconds)

    def index_client(self, url: str | None = None) -> IndexClient:
        """Release facts, cached in Redis when fleet mode configures it, else on disk."""
        from core.health.releases import DiskFactsCache, FactsCache, IndexClient, RedisFactsCache

        cache: FactsCache
        if self.settings.redis_url:
            import redis

            cache = RedisFactsCache(redis.Redis.from_url(self.settings.redis_url))
        else:
            cache = DiskFactsCache(self.settings.cache_dir / "index")
        return IndexClient(
            url or self.settings.index_url,
            cache=cache,
            ttl_seconds=self.settings.index_cache_hours * 3600,
        )

    def advisory_source(
        self, directory: Path | None = None, pip_audit: bool = False, osv_url: str | None = None
    ) -> AdvisorySource:
        """The configured advisory source; explicit arguments win over settings."""
        from core.health.advisories import OsvDirectory, PipAuditSource

        use_pip_audit = pip_audit or (
            directory is None and self.settings.advisory_source == "pip-audit"
        )
        if use_pip_audit:
            return PipAuditSource(
                osv_url=osv_url or self.settings.osv_url,
                cache_dir=self.settings.cache_dir / "pip-audit",
            )
        chosen = directory or self.settings.advisory_dir
        if chosen is None:
            raise ConfigurationError(
                "no advisory source: set SPECFLEET_ADVISORY_DIR to an OSV advisory directory "
                "(or pass --advisories DIR), or use pip-audit (--pip-audit)"
            )
        return OsvDirectory(chosen, cache_dir=self.settings.cache_dir / "osv")


def wiring() -> Wiring:
    from core.log import configure_logging

    settings = get_settings()
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
