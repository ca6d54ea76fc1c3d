"""``specfleet digest``: the owners' weekly digest, shown (``--dry-run``) or sent; opt-outs.

Exit codes: 0 done (nothing waiting is not an error), 1 some delivery failed (the next run
retries it), 2 usage or environment errors.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from specfleet.cli.common import EXIT_INVALID, console, current_actor, fail, reported_errors, wiring
from specfleet.core.notify.digest import OwnerDigest
from specfleet.core.notify.send import DigestRun, send_digests, set_opt_out
from specfleet.core.spec.model import EMAIL_PATTERN

app = typer.Typer(
    help="The owners' weekly digest: what would be sent (--dry-run), sending it, opt-outs.",
    invoke_without_command=True,
)
VERDICT_STYLE = {"verified": "green", "draft": "yellow", "not verified": "red"}


@app.callback()
def digest(
    context: typer.Context,
    owner: Annotated[str | None, typer.Option(help="Only this owner's digest.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")
    ] = False,
) -> None:
    """Send this week's digest to every owner with something waiting (once per week)."""
    if context.invoked_subcommand is not None:
        return
    with reported_errors():
        wired = wiring()
        run = send_digests(wired.settings, wired.engine, owner=owner, dry_run=dry_run)
    print_digests(run, console, dry_run=dry_run)
    if not dry_run:
        _print_deliveries(run)
        if any(delivery.status == "failed" for delivery in run.deliveries):
            raise typer.Exit(EXIT_INVALID)


@app.command("opt-out")
def opt_out(owner: Annotated[str, typer.Argument(help="Owner's e-mail address.")]) -> None:
    """Send this owner no digest and no needs-human notice."""
    _set(owner, out=True)


@app.command("opt-in")
def opt_in(owner: Annotated[str, typer.Argument(help="Owner's e-mail address.")]) -> None:
    """Withdraw an owner's opt-out."""
    _set(owner, out=False)


def _set(owner: str, out: bool) -> None:
    import re

    if not re.match(EMAIL_PATTERN, owner):
        fail(f"owner {owner!r} is not an e-mail address")
    with reported_errors():
        changed = set_opt_out(wiring().engine, owner, current_actor(), out)
    state = "opted out of" if out else "opted in to"
    prefix = "" if changed else "already "
    console.print(f"{escape(owner)} {prefix}{state} notifications")


def print_digests(run: DigestRun, out: Console, dry_run: bool = True) -> None:
    """The digests of a run as a table: one row per owner with something waiting."""
    if not run.digests:
        out.print(f"[dim]{run.week}: nothing waits for any owner; no digest is sent.[/]")
        return
    verb = "would be sent" if dry_run else "sent"
    channels = ", ".join(run.channels) or "no channel configured (set SPECFLEET_SMTP_HOST or "
    channels += "" if run.channels else "SPECFLEET_NOTIFY_WEBHOOK_URL)"
    table = Table(
        title=f"Digest {run.week}: {len(run.digests)} owners, {verb} by {channels}",
        title_justify="left",
        show_lines=True,
    )
    headings = (
        "owner",
        "products",
        "merge requests (verdict, new rules)",
        "needs a person",
        "merged by automerge (revert)",
    )
    for heading in headings:
        table.add_column(heading, overflow="fold")
    for digest in run.digests:
        table.add_row(
            escape(digest.owner),
            escape(", ".join(product.name for product in digest.products)),
            _requests_cell(digest),
            _needs_human_cell(digest),
            _automerged_cell(digest),
        )
    out.print(table)


def _requests_cell(digest: OwnerDigest) -> str:
    lines = []
    for request in digest.merge_requests:
        style = VERDICT_STYLE.get(request.verdict, "white")
        line = (
            f"{escape(digest.product_name(request.product_id))}: {escape(request.title)} "
            f"[{style}]{request.verdict}[/]"
        )
        if request.rules:
            line += "\n  answers " + escape(", ".join(rule.id for rule in request.rules))
        lines.append(line)
    return "\n".join(lines) or "[dim]none[/]"


def _needs_human_cell(digest: OwnerDigest) -> str:
    lines = [
        f"{escape(digest.product_name(item.product_id))}: {escape(item.reason)}\n"
        f"  [bold]what to do:[/] {escape(item.what_to_do)}"
        for item in digest.needs_human
    ]
    return "\n".join(lines) or "[dim]none[/]"


def _automerged_cell(digest: OwnerDigest) -> str:
    lines = []
    for item in digest.automerged:
        line = (
            f"{escape(digest.product_name(item.product_id))}: !{item.merge_request_id} "
            f"{escape(item.title)} [dim]({escape(item.level)}, "
            f"{item.merged_at:%Y-%m-%d})[/]"
        )
        if item.revert_merge_request_id is not None:
            line += f"\n  revert open: merge request {item.revert_merge_request_id}"
        else:
            line += f"\n  specfleet mr revert {item.merge_request_id}"
        lines.append(line)
    return "\n".join(lines) or "[dim]none[/]"


def _print_deliveries(run: DigestRun) -> None:
    for delivery in run.deliveries:
        mark = {"sent": "[green]sent[/]", "already-sent": "[dim]already sent this week[/]"}.get(
            delivery.status, "[red]failed[/]"
        )
        detail = f": {escape(delivery.detail)}" if delivery.detail else ""
        console.print(f"{escape(delivery.owner)} by {delivery.channel}: {mark}{detail}")
