"""``specfleet spec``: validate, show and publish the schema of ``dataproduct.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    console,
    err_console,
    reported_errors,
)
from specfleet.core.errors import InputError
from specfleet.core.spec import Spec, check_spec_file
from specfleet.core.spec.layout import layout_notes
from specfleet.core.spec.model import Output
from specfleet.core.spec.schema import spec_json_schema

app = typer.Typer(help="Validate and read dataproduct.yaml specs.", no_args_is_help=True)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec files to validate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
) -> None:
    """Check specs against the format; exit 0 valid, 1 invalid, 2 unreadable."""
    worst = EXIT_OK
    report = []
    for path in paths:
        try:
            check = check_spec_file(path)
        except InputError as error:
            worst = EXIT_USAGE
            report.append({"file": str(path), "valid": False, "error": str(error)})
            if not as_json:
                err_console.print(f"[bold red]error:[/] {escape(str(error))}")
            continue
        notes = layout_notes(check.spec) if check.spec is not None else []
        report.append(
            {
                "file": str(path),
                "valid": check.valid,
                "id": check.spec.id if check.spec else None,
                "problems": [problem.as_dict() for problem in check.problems],
                "warnings": notes,
            }
        )
        if check.spec is not None:
            if not as_json:
                console.print(f"[green]valid[/]   {escape(str(path))} (product {check.spec.id})")
                for note in notes:
                    err_console.print(f"  [yellow]warning:[/] {escape(note)}", soft_wrap=True)
            continue
        worst = max(worst, EXIT_INVALID)
        if not as_json:
            count = len(check.problems)
            noun = "problem" if count == 1 else "problems"
            err_console.print(f"[red]invalid[/] {escape(str(path))}: {count} {noun}")
            for problem in check.problems:
                err_console.print(f"  {problem.render()}", markup=False, soft_wrap=True)
    if as_json:
        console.print_json(json.dumps(report))
    raise typer.Exit(worst)


@app.command()
def show(path: Annotated[Path, typer.Argument(help="Spec file to render.")]) -> None:
    """Render a spec for people: purpose, outputs and why, requirements, amendment timeline."""
    from specfleet.core.spec import load_spec

    with reported_errors():
        spec = load_spec(path)
    render_spec(spec)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Repository (a dbt project) to draft for.")] = Path(),
    from_odcs: Annotated[
        Path | None, typer.Option("--from-odcs", help="Draft from this ODCS data contract.")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write PATH/dataproduct.yaml (never overwrites).")
    ] = False,
) -> None:
    """Draft dataproduct.yaml from a dbt project or an ODCS contract; gaps marked # OWNER:."""
    from specfleet.core.spec.init import init_text

    with reported_errors():
        text = init_text(path, from_odcs)
    if not write:
        console.print(text, markup=False, highlight=False, end="", soft_wrap=True)
        return
    target = path / "dataproduct.yaml"
    if target.exists():
        err_console.print(f"[bold red]error:[/] {escape(str(target))} exists; not overwritten")
        raise typer.Exit(EXIT_USAGE)
    target.write_text(text)
    gaps = text.count("# OWNER:")
    console.print(f"wrote {escape(str(target))}: {gaps} places for the owner to fill in")


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="Spec file to export.")],
    odcs: Annotated[bool, typer.Option("--odcs", help="As an ODCS v3 data contract.")] = True,
) -> None:
    """Print a spec as an Open Data Contract Standard (v3) YAML document."""
    import yaml

    from specfleet.core.spec import load_spec
    from specfleet.core.spec.odcs import spec_to_odcs

    with reported_errors():
        spec = load_spec(path)
    document = spec_to_odcs(spec)
    console.print(
        yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100),
        markup=False,
        highlight=False,
        end="",
        soft_wrap=True,
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of dataproduct.yaml, for editors and CI checks."""
    console.print_json(json.dumps(spec_json_schema()))


def _shown_type(logical: str, declared: str) -> str:
    """``string (declared varchar)`` when the author wrote an alias, else the logical type."""
    return logical if declared == logical else escape(f"{logical} (declared {declared})")


def _output_table(output: Output) -> Table:
    """One output's columns: type, whether required, what it means and why it is there."""
    key = ", ".join(output.primary_key) or "none"
    table = Table(
        title=f"Output {output.name} ({output.format}: {output.path}; key: {key})",
        title_justify="left",
        show_lines=True,
    )
    for heading in ("column", "type", "required", "description", "why"):
        table.add_column(heading, overflow="fold")
    for column in output.columns:
        table.add_row(
            column.name,
            _shown_type(column.type, column.declared_type),
            "yes" if column.required else "",
            escape(column.description or "[missing]"),
            escape(column.why or "[missing]"),
        )
    return table


def render_spec(spec: Spec) -> None:
    owners = ", ".join(spec.owners)
    tags = ", ".join(spec.tags) or "-"
    console.print(
        Panel(
            f"{escape(spec.purpose.strip())}\n\n[dim]owners[/] {escape(owners)}   "
            f"[dim]tags[/] {escape(tags)}   [dim]runtime[/] {spec.implementation.runtime}",
            title=f"[bold]{escape(spec.name)}[/] ({spec.id})",
            title_align="left",
        )
    )
    if spec.inputs:
        inputs = Table(title="Inputs", title_justify="left", show_lines=False)
        for heading in ("input", "format", "fixture", "expectations"):
            inputs.add_column(heading)
        for item in spec.inputs:
            inputs.add_row(item.name, item.format, item.fixture, "; ".join(item.expectations))
        console.print(inputs)
    for output in spec.outputs:
        console.print(_output_table(output))
    if spec.requirements:
        table = Table(title="Requirements", title_justify="left", show_lines=True)
        for heading in ("id", "requirement", "proved by"):
            table.add_column(heading, overflow="fold")
        for requirement in spec.requirements:
            table.add_row(
                requirement.id,
                escape(requirement.text),
                escape("\n".join(requirement.tests) or "[no test named]"),
            )
        console.print(table)
    if spec.failure_modes:
        table = Table(title="Failure modes", title_justify="left")
        for heading in ("id", "when", "expect"):
            table.add_column(heading, overflow="fold")
        for mode in spec.failure_modes:
            when = "input missing" if mode.when.input_missing else "input empty"
            expect = f"exit {mode.expect.exit_code}"
            if mode.expect.stderr_contains:
                expect += f", stderr contains {mode.expect.stderr_contains!r}"
            table.add_row(mode.id, f"{when}: {mode.when.input_name}", escape(expect))
        console.print(table)
    if spec.amendments:
        console.print("[bold]Amendment timeline[/]")
        for amendment in sorted(spec.amendments, key=lambda item: (item.date, item.id)):
            console.print(
                f"  [cyan]{amendment.date.isoformat()}[/] [bold]{amendment.id}[/] "
                f"{escape(amendment.requirement)}\n"
                f"      changed: {escape(amendment.change)}\n"
                f"      why:     {escape(amendment.why)}"
            )
