"""``specfleet web`` (the console and JSON API) and ``specfleet user`` (accounts, API tokens)."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from ui.cli.common import EXIT_USAGE, console, current_actor, fail, reported_errors, wiring

app = typer.Typer(help="Console accounts and API tokens.", no_args_is_help=True)


def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web console and the JSON API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    from core.log import configure_service_logging
    from ui.web.app import create_app

    with reported_errors():
        wired = wiring()
        configure_service_logging(wired.settings, service="web")
        application = create_app(wired.settings)
    console.print(f"specfleet console on http://{host}:{port}/ (Ctrl+C stops it)")
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler that
    # was there before it: make that an ordinary exit 0 so supervisors see a clean stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through specfleet's (redacting) logging
        proxy_headers=True,
    )


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Account name (used to sign in).")],
    role: Annotated[str, typer.Option(help="platform, architect, owner or viewer.")],
    owner_of: Annotated[
        list[str] | None,
        typer.Option("--owner-of", help="E-mail listed in products' owners (repeatable)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create (or update) a console account; without a password it can only use API tokens."""
    from ui.web.auth import create_account

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            fail("no password on standard input", EXIT_USAGE)
    with reported_errors():
        account = create_account(
            wiring().engine, name, role, list(owner_of or []), password, current_actor()
        )
    console.print(
        f"account [bold]{account.name}[/] ({account.role})"
        + (f", owner of {', '.join(account.emails)}" if account.emails else "")
        + ("" if account.password_hash else "; no password: API tokens only")
    )


@app.command("token")
def token(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Print a new API token for the account, once: only its hash is kept."""
    from ui.web.auth import issue_token

    with reported_errors():
        value = issue_token(wiring().engine, name, current_actor())
    # stdout carries only the token, so `TOKEN=$(specfleet user token NAME)` works
    print(value)
