"""``specfleet web`` (the console and JSON API) and ``specfleet user`` (accounts, API tokens)."""

from __future__ import annotations

import datetime as dt
import signal
import sys
from typing import Annotated

import typer

from specfleet.cli.common import EXIT_USAGE, console, current_actor, fail, reported_errors, wiring

app = typer.Typer(help="Console accounts and API tokens.", no_args_is_help=True)


def web(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web console and the JSON API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    from specfleet.core.log import configure_service_logging
    from specfleet.web.app import create_app

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
    from specfleet.web.auth import create_account

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
def token(
    name: Annotated[str, typer.Argument(help="Account name.")],
    label: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    expires: Annotated[
        int | None, typer.Option("--expires", help="Days until the token stops working.")
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Only GET requests (read scope).")
    ] = False,
) -> None:
    """Print a new API token for the account, once: only its hash is kept."""
    from specfleet.web.auth import issue_token

    scopes = ("read",) if read_only else ("read", "write")
    with reported_errors():
        value = issue_token(wiring().engine, name, current_actor(), label, expires, scopes)
    # stdout carries only the token, so `TOKEN=$(specfleet user token NAME)` works
    print(value)


@app.command("tokens")
def tokens(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """List the account's API tokens: id, name, created, last used, expiry, scopes, state."""
    from rich.table import Table

    from specfleet.web.credentials import list_tokens

    with reported_errors():
        rows = list_tokens(wiring().engine, name)
    table = Table("id", "name", "created", "last used", "expires", "scopes", "state")
    for row in rows:
        table.add_row(
            row.key_id,
            row.name or "-",
            _when(row.created_at),
            _when(row.last_used_at),
            _when(row.expires_at) if row.expires_at else "never",
            ",".join(row.scopes),
            row.state,
        )
    console.print(table if rows else f"{name} has no API tokens")


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Account name.")],
    token_id: Annotated[
        str | None, typer.Argument(help="Token id from `specfleet user tokens`.")
    ] = None,
    all_tokens: Annotated[bool, typer.Option("--all", help="Revoke every token.")] = False,
) -> None:
    """Revoke one API token (or --all): the next request with it gets 401."""
    from specfleet.web.credentials import revoke_tokens

    if (token_id is None) == (not all_tokens):
        fail("give a TOKEN-ID or --all (not both)", EXIT_USAGE)
    with reported_errors():
        count = revoke_tokens(wiring().engine, name, token_id, current_actor())
    console.print(f"revoked {count} token{'s' if count != 1 else ''} of {name}")


@app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Disable an account: its sessions end and its tokens stop working at once."""
    from specfleet.web.credentials import set_disabled

    with reported_errors():
        ended = set_disabled(wiring().engine, name, True, current_actor())
    console.print(f"account {name} disabled; {ended} session(s) ended, its tokens refused")


@app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Enable a disabled account again (its unrevoked tokens work again)."""
    from specfleet.web.credentials import set_disabled

    with reported_errors():
        set_disabled(wiring().engine, name, False, current_actor())
    console.print(f"account {name} enabled")


@app.command("passwd")
def passwd(name: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Set a new password (read from standard input) and end the account's sessions."""
    from specfleet.web.credentials import change_password

    password = sys.stdin.readline().rstrip("\n")
    if not password:
        fail("no password on standard input", EXIT_USAGE)
    with reported_errors():
        ended = change_password(wiring().engine, name, password, current_actor())
    console.print(f"password of {name} changed; {ended} session(s) ended")
