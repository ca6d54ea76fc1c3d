"""``specfleet examples``: make git repositories of the bundled example data products."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from specfleet.cli.common import console, reported_errors
from specfleet.examples import EXAMPLES_DIR, materialise_examples, write_fleet_file

app = typer.Typer(help="The bundled example data products.", no_args_is_help=True)


@app.command()
def init(
    target: Annotated[Path, typer.Argument(help="Directory to create the repositories in.")],
    source: Annotated[Path, typer.Option(help="Folder of example products.")] = EXAMPLES_DIR,
) -> None:
    """Create one git repository per example and a fleet.yaml to import them."""
    with reported_errors():
        repos = materialise_examples(target.resolve(), source)
        fleet = write_fleet_file(target.resolve(), repos)
    table = Table(title=f"{len(repos)} example repositories", title_justify="left")
    table.add_column("product")
    table.add_column("repository")
    table.add_column("state")
    for repo in repos:
        table.add_row(repo.product_id, str(repo.path), "created" if repo.created else "existing")
    console.print(table)
    console.print(f"Register them with: specfleet product import {fleet}")
