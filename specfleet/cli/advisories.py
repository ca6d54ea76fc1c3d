"""``specfleet advisories``: check pins against an OSV advisory directory, or serve it to pip-audit.

``check`` exits 0 when no advisory affects the pins, 1 when one does (or may: an advisory
whose data cannot decide is listed with "maybe"), 2 for usage or I/O errors. ``serve``
runs until Ctrl-C (or SIGTERM) and exits 0.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from packaging.utils import InvalidName, canonicalize_name
from rich.markup import escape
from rich.table import Table

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    reported_errors,
    wiring,
)
from specfleet.core.health.advisories import OsvDirectory, is_loopback, make_server
from specfleet.core.health.advisories.interface import PackageVersion

app = typer.Typer(
    help="Vulnerability advisories: check pins against an OSV directory, serve it to pip-audit.",
    no_args_is_help=True,
)

COLUMNS = ("Package", "Version", "Advisory", "Aliases", "Severity", "Affected", "Fixed in")
DirectoryArgument = Annotated[
    Path,
    typer.Argument(
        help="An OSV advisory directory: a PyPA advisory-database clone, its vulns/ folder, "
        "or a folder of OSV .json/.yaml files."
    ),
]


@app.command()
def check(
    directory: DirectoryArgument,
    pins: Annotated[list[str], typer.Argument(help="Exact pins, e.g. requests==2.28.2.")],
) -> None:
    """List the advisories that affect exact pins; exit 1 when any does."""
    wanted = [_parse_pin(text) for text in pins]
    with reported_errors():
        source = OsvDirectory(directory)
        found = source.advisories_for(wanted)
    for problem in source.problems:
        err_console.print(
            f"[yellow]warning:[/] skipped {escape(problem.path)}: {escape(problem.reason)}",
            soft_wrap=True,
        )
    rows = [
        (
            name,
            version,
            advisory.id,
            "\n".join(advisory.aliases) or "-",
            advisory.severity or "unknown",
            "yes" if advisory.affects(version) else "maybe",
            advisory.first_fix_after(version) or "none known",
        )
        for (name, version), advisories in found.items()
        for advisory in advisories
    ]
    table = Table(title="Advisories", title_justify="left")
    for index, column in enumerate(COLUMNS):
        # identifiers and versions are never cut; package names and aliases may fold
        widest = max((len(line) for row in rows for line in row[index].splitlines()), default=0)
        folds = column in ("Package", "Aliases")
        table.add_column(
            column, overflow="fold", no_wrap=not folds, min_width=None if folds else widest
        )
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    count = table.row_count
    checked = f"{len(found)} {'pin' if len(found) == 1 else 'pins'} checked"
    if count == 0:
        console.print(f"No known vulnerability affects the {checked}.")
        raise typer.Exit(EXIT_OK)
    console.print(table)
    console.print(f"{count} {'advisory' if count == 1 else 'advisories'} for the {checked}.")
    raise typer.Exit(EXIT_INVALID)


@app.command()
def serve(
    directory: DirectoryArgument,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 8765,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote", help="Allow a non-loopback host (anyone who can reach it may query)."
        ),
    ] = False,
) -> None:
    """Serve an advisory directory as an OSV-compatible API, for pip-audit --osv-url."""
    if not is_loopback(host) and not allow_remote:
        fail(
            f"{host} is reachable from other machines; pass --allow-remote to serve there",
            EXIT_USAGE,
        )
    if not 0 <= port <= 65535:
        fail(f"port {port} is not between 0 and 65535", EXIT_USAGE)
    wiring()  # logging to stderr, as configured
    with reported_errors():
        source = OsvDirectory(directory)
    try:
        server = make_server(source, host, port)
    except OSError as error:
        fail(f"cannot listen on {host}:{port}: {error.strerror or error}", EXIT_USAGE)
    console.print(f"Serving {escape(str(directory))} at {server.url}", soft_wrap=True)
    console.print(
        f"Audit with: pip-audit --vulnerability-service osv --osv-url {server.query_url} "
        "-r requirements.txt",
        soft_wrap=True,
    )
    console.print("Ctrl-C stops.")
    sys.stdout.flush()  # whoever started us waits for the URL
    # Ctrl-C and SIGTERM stop it even when started with SIGINT ignored (a background job of
    # a script, or nohup, inherits SIG_IGN and Python then raises no KeyboardInterrupt)
    previous = {
        signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.server_close()
    err_console.print("stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parse_pin(text: str) -> PackageVersion:
    name, separator, version = text.partition("==")
    name, version = name.strip(), version.strip()
    if not separator or not name or not version or version.startswith("="):
        fail(f"{text!r} is not an exact pin like requests==2.28.2", EXIT_USAGE)
    try:
        return canonicalize_name(name, validate=True), version
    except InvalidName:
        fail(f"{name!r} is not a valid package name", EXIT_USAGE)
