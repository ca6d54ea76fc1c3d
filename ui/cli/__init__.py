"""The ``specfleet`` command line (Typer + Rich); every command's exit codes are in common.py."""

from __future__ import annotations

import sys
from typing import Any

import typer

# `health` and `remediate` are built alone when they are the command typed, so they import
# only what they use (no database layer, no Celery): see bench/health_vs_pip_audit.py
LIGHT_COMMANDS = ("health", "remediate")


def _light_app() -> typer.Typer:
    from ui.cli import health

    light = typer.Typer(
        name="specfleet", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )
    light.command("health")(health.health)
    light.command("remediate")(health.remediate)
    return light


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in LIGHT_COMMANDS:
        _light_app()()
        return
    from ui.cli.tree import app

    app()


def __getattr__(name: str) -> Any:
    # `from ui.cli import app` (tests, the demo) imports the full command tree on first use
    if name == "app":
        from ui.cli.tree import app

        return app
    raise AttributeError(name)
