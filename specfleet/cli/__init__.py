"""The ``specfleet`` command line (Typer + Rich); every command's exit codes are in common.py.

Start-up is lazy: ``main`` builds an app holding only the command the user named (the table in
:mod:`specfleet.cli.commands`), and the root help is printed from that table without importing any
command. ``specfleet.cli.app`` (every command, for tests and the demo) is built on first access.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from specfleet.cli.commands import COMMANDS, HELP, Command, find

if TYPE_CHECKING:
    import typer

ROOT_HELP_FLAGS = ("--help", "-h")


def build_app(commands: tuple[Command, ...] = COMMANDS) -> typer.Typer:
    """A Typer app with ``commands`` registered, importing only their modules."""
    import typer

    app = typer.Typer(
        name="specfleet",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root() -> None:  # keeps `specfleet NAME ...` a group even with one command registered
        pass

    _root.__doc__ = HELP
    for command in commands:
        target = getattr(importlib.import_module(f"{__name__}.{command.module}"), command.attribute)
        if command.group:
            app.add_typer(target, name=command.name)
        else:
            app.command(command.name)(target)
    return app


def root_help() -> str:
    """The root help page, drawn from the command table (no command module imported)."""
    width = max(len(command.name) for command in COMMANDS)
    lines = [
        "Usage: specfleet [OPTIONS] COMMAND [ARGS]...",
        "",
        f"  {HELP}",
        "",
        "Options:",
        "  --help  Show this message and exit.",
        "",
        "Commands:",
    ]
    lines += [f"  {command.name.ljust(width)}  {command.summary}" for command in COMMANDS]
    lines += ["", "Run `specfleet COMMAND --help` for a command's options and exit codes."]
    return "\n".join(lines)


def main() -> None:
    arguments = sys.argv[1:]
    if not arguments or arguments[0] in ROOT_HELP_FLAGS:
        try:
            print(root_help(), flush=True)
        except BrokenPipeError:  # `specfleet --help | head`: the reader left, which is fine
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    command = find(arguments[0])
    build_app((command,) if command else COMMANDS)()


def __getattr__(name: str) -> Any:
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
