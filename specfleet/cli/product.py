"""``specfleet product``: register, list, show, remove and import data products."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    console,
    current_actor,
    err_console,
    fail,
    reported_errors,
    wiring,
)
from specfleet.core.db import Product
from specfleet.core.errors import InputError, SpecfleetError, SpecMissing
from specfleet.core.git import MirrorCache
from specfleet.core.registry import (
    ImportReport,
    Registration,
    get_product,
    list_products,
    product_history,
    read_import_file,
    utc_text,
)
from specfleet.services import products

app = typer.Typer(help="Register and inspect data products.", no_args_is_help=True)

# internal column names as a person would say them
FIELD_NAMES = {"spec_hash": "spec content", "registration_hash": "registration"}


@app.command()
def add(
    repo: Annotated[str, typer.Option(help="Repository URL, file:// URL or local path.")],
    branch: Annotated[
        str | None,
        typer.Option(help="Branch holding the spec; default: the repository's default branch."),
    ] = None,
    spec: Annotated[
        str, typer.Option(help="Spec path inside the repository.")
    ] = "dataproduct.yaml",
    forge: Annotated[
        str, typer.Option(help="local, gitlab or github (github: --repo OWNER/NAME).")
    ] = "local",
    project: Annotated[str | None, typer.Option(help="Forge project id or path.")] = None,
    owner: Annotated[list[str] | None, typer.Option(help="Extra owner (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Extra tag (repeatable).")] = None,
    onboard: Annotated[
        bool,
        typer.Option(
            "--onboard",
            help="No spec on the branch: register the product from a drafted spec and open an "
            "onboarding merge request carrying it (dbt projects).",
        ),
    ] = False,
) -> None:
    """Register a product from its repository; its spec must be present and valid.

    A dbt project without a spec gets a drafted one: saved for its owner, or with --onboard
    committed on an onboarding merge request (the product is evaluated once it is merged).
    """
    if forge == "github":
        repo, project = _github_repository(repo, project)
    try:
        registration = Registration(
            repo=repo,
            branch=branch or "main",
            spec=spec,
            forge=forge,
            project=project,
            owners=tuple(owner or ()),
            tags=tuple(tag or ()),
        )
    except ValueError as error:
        fail(_first_error(error))
    with reported_errors():
        wired = wiring()
        if branch is None:
            registration = products.on_default_branch(wired.mirrors, registration)
        try:
            result = products.register_product(
                wired.engine, wired.mirrors, current_actor(), registration
            )
        except SpecMissing:
            if onboard:
                _onboard(registration)
                return
            _offer_draft(wired.mirrors, registration)
            raise
    verb = {
        "added": "[green]registered[/]",
        "updated": "[yellow]updated[/]",
        "reactivated": "[green]re-registered[/]",
        "unchanged": "[dim]already registered, nothing changed:[/]",
    }[result.status]
    changed = [FIELD_NAMES.get(name, name) for name in result.changed_fields]
    detail = f" ({', '.join(changed)} changed)" if changed else ""
    console.print(f"{verb} product [bold]{result.product_id}[/]{detail}")


def _onboard(registration: Registration) -> None:
    """Open the onboarding merge request (SpecMissing when there is nothing to draft from)."""
    from specfleet.core.forges import forge_named
    from specfleet.services.onboarding import onboard_product

    wired = wiring()
    onboarding = onboard_product(
        wired.engine,
        wired.mirrors,
        forge_named(registration.forge, wired.settings, wired.engine),
        current_actor(),
        registration,
        wired.settings.home / "onboarding",
    )
    verb = "opened" if onboarding.created else "already open:"
    console.print(
        f"[green]onboarding[/] product [bold]{onboarding.product_id}[/] registered from a drafted "
        f"spec; merge request {verb} {escape(onboarding.url)}\n"
        f"  {onboarding.to_review} lines are marked '# OWNER:' for the owner to fill in before "
        f"merging; until then evaluations end no-change\n"
        f"  draft also saved as {escape(str(onboarding.draft))}",
        soft_wrap=True,
    )


def _offer_draft(mirrors: MirrorCache, registration: Registration) -> None:
    """A repository without a spec: when it is a dbt project, draft one for its owner."""
    from specfleet.core.registry.onboarding import draft_for_repository

    try:
        draft = draft_for_repository(mirrors, registration, wiring().settings.home / "onboarding")
    except SpecfleetError:
        return  # the missing spec is the error to report
    if draft is not None:
        err_console.print(
            f"[yellow]onboarding:[/] drafted a spec from the dbt project: {escape(str(draft))}\n"
            f"  review the lines marked '# OWNER:', commit it as {escape(registration.spec)} "
            f"on {escape(registration.branch)}, then run product add again; or run it with "
            "--onboard to open an onboarding merge request carrying the draft",
            soft_wrap=True,
        )


def _github_repository(repo: str, project: str | None) -> tuple[str, str | None]:
    """``--repo OWNER/NAME`` on the github forge: clone URL from the settings, project OWNER/NAME.

    A URL or an existing local path is kept as given (with ``--project`` naming the GitHub
    repository pull requests go to).
    """
    from specfleet.core.forges.github import clone_url_for

    if "://" in repo or repo.count("/") != 1 or Path(repo).exists():
        return repo, project
    try:
        return clone_url_for(wiring().settings.github_url, repo), project or repo
    except InputError as error:
        fail(str(error))


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include removed products.")] = False,
    owner: Annotated[str | None, typer.Option(help="Only products with this owner.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only products with this tag.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered products as a table."""
    with reported_errors():
        products = list_products(wiring().engine, include_removed=all_, owner=owner, tag=tag)
    if as_json:
        console.print_json(json.dumps([_as_dict(product) for product in products]))
        return
    table = Table(title=f"{len(products)} products", title_justify="left")
    table.add_column("id", no_wrap=True)
    for heading in ("name", "owners", "tags", "repository"):
        table.add_column(heading, overflow="fold")
    table.add_column("branch", no_wrap=True)
    table.add_column("registered", no_wrap=True)
    for product in products:
        name = escape(product.name) + ("" if product.active else " [red](removed)[/]")
        table.add_row(
            product.id,
            name,
            escape("\n".join(product.owners)),
            escape(", ".join(product.tags)),
            escape(product.repo_url),
            escape(product.branch),
            product.registered_at.strftime("%Y-%m-%d"),
        )
    console.print(table)


@app.command()
def show(product_id: Annotated[str, typer.Argument(help="Product id.")]) -> None:
    """Show one product's registration and its history."""
    with reported_errors():
        engine = wiring().engine
        product = get_product(engine, product_id)
        history = product_history(engine, product_id)
    table = Table(show_header=False, title=f"Product {product.id}", title_justify="left")
    table.add_column("field", style="dim")
    table.add_column("value", overflow="fold")
    for name, value in _as_dict(product).items():
        table.add_row(name, escape(", ".join(value) if isinstance(value, list) else str(value)))
    console.print(table)
    if history:
        log = Table(title="History", title_justify="left")
        for heading in ("when", "who", "what", "detail"):
            log.add_column(heading, overflow="fold")
        for entry in history:
            changed = (entry.detail or {}).get("changed") or []
            log.add_row(utc_text(entry.at), escape(entry.actor), entry.action, ", ".join(changed))
        console.print(log)


@app.command()
def remove(product_id: Annotated[str, typer.Argument(help="Product id.")]) -> None:
    """Stop evaluating a product; its history is kept and it can be registered again."""
    with reported_errors():
        wired = wiring()
        removed = products.remove_product(wired.engine, wired.mirrors, current_actor(), product_id)
    if removed:
        console.print(f"[yellow]removed[/] product [bold]{product_id}[/] (history kept)")
    else:
        console.print(f"[dim]product {product_id} was already removed; nothing changed[/]")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="YAML or CSV file of products to register.")],
) -> None:
    """Register every product in a file; bad rows are reported, the rest imported."""
    with reported_errors():
        rows = read_import_file(file)
        wired = wiring()
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task("reading specs", total=len(rows))
            report = products.import_products(
                wired.engine,
                wired.mirrors,
                current_actor(),
                rows,
                on_progress=lambda done: progress.update(task, completed=done),
            )
    _print_import_report(file, len(rows), report)
    raise typer.Exit(EXIT_INVALID if report.failed else EXIT_OK)


def _print_import_report(file: Path, total: int, report: ImportReport) -> None:
    console.print(f"Import of {escape(str(file))} ({total} rows)", soft_wrap=True)
    summary = Table()
    summary.add_column("outcome")
    summary.add_column("products", justify="right")
    for status in ("added", "updated", "reactivated", "unchanged"):
        summary.add_row(status, str(report.count(status)))
    summary.add_row("[red]rejected rows[/]", str(len(report.failed)))
    console.print(summary)
    if report.failed:
        failures = Table(title="Rejected rows", title_justify="left")
        failures.add_column("row")
        failures.add_column("reason", overflow="fold")
        for failure in report.failed:
            failures.add_row(escape(failure.label), escape(failure.reason))
        err_console.print(failures)
    if report.results and not report.changed_anything:
        console.print(
            f"Nothing changed: all {len(report.results)} products are already registered "
            "as this file describes."
        )


def _as_dict(product: Product) -> dict[str, object]:
    return {
        "id": product.id,
        "name": product.name,
        "repo": product.repo_url,
        "branch": product.branch,
        "spec": product.spec_path,
        "forge": product.forge,
        "project": product.forge_project,
        "owners": product.owners,
        "tags": product.tags,
        "runtime": product.runtime,
        "spec_commit": product.spec_commit,
        "active": product.active,
        "registered_at": utc_text(product.registered_at),
        "removed_at": utc_text(product.removed_at) if product.removed_at else None,
    }


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = []
        for item in errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"])
            parts.append(f"--{where}: {str(item['msg']).removeprefix('Value error, ')}")
        return "; ".join(parts)
    return str(error)
