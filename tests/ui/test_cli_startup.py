"""Start-up: the root help comes from the command table, and a command imports only its module."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import typer

import specfleet.cli.commands as command_table
from specfleet.cli import build_app, root_help
from specfleet.cli.commands import COMMANDS

CLI = command_table.__name__.rsplit(".", 1)[0]  # the CLI package's installed name

HEAVY = ("sqlalchemy", "celery", "fastapi", "openai", "git")


def _summary_in_code(command) -> str:  # type: ignore[no-untyped-def]
    target = getattr(importlib.import_module(f"{CLI}.{command.module}"), command.attribute)
    if command.group:
        assert isinstance(target, typer.Typer)
        return str(target.info.help)
    return inspect.getdoc(target).splitlines()[0]


def test_every_summary_is_the_commands_own_first_line() -> None:
    """The table cannot drift from the code: `specfleet --help` says what each command says."""
    for command in COMMANDS:
        assert command.summary == _summary_in_code(command), command.name


def test_root_help_lists_every_command_the_full_app_has() -> None:
    click_app = typer.main.get_command(build_app())
    names = set(click_app.commands)  # type: ignore[attr-defined]
    assert names == {command.name for command in COMMANDS}
    page = root_help()
    for name in names:
        assert f"\n  {name} " in page


def _modules_after(*argv: str) -> set[str]:
    probe = (
        "import sys; sys.argv = ['specfleet', *sys.argv[1:]]\n"
        f"from {CLI} import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120
    )
    return set(done.stderr.split())


def test_root_help_imports_no_command() -> None:
    loaded = _modules_after("--help")
    assert not any(name.startswith(("typer", "rich")) for name in loaded)
    assert not any(name.split(".")[0] in HEAVY or name in HEAVY for name in loaded)


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _modules_after("examples", "--help")
    assert f"{CLI}.examples" in loaded
    assert not {f"{CLI}.web", f"{CLI}.fleet", f"{CLI}.demo", "specfleet.web.app"} & loaded
    assert "celery" not in loaded
