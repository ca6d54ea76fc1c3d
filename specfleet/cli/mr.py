"""``specfleet mr``: list, read, approve, merge and close merge requests of the local forge.

Merge requests on GitLab are listed and shown from specfleet's records too, but approved and
merged on GitLab itself. Exit codes: 0 done, 1 refused (a draft, a closed merge request, no
approval, a conflict, an unknown id), 2 usage or environment errors.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from sqlmodel import col, select

from specfleet.cli.common import (
    EXIT_INVALID,
    Wiring,
    console,
    current_actor,
    fail,
    reported_errors,
    wiring,
)
from specfleet.core.db import AuditEntry, MergeRequest, session_scope
from specfleet.core.errors import MergeRequestNotFound, MergeRequestRefused
from specfleet.core.forges.local import LocalForge
from specfleet.core.registry import utc_text
from specfleet.worker.review import review_facts

VERDICT_STYLE = {
    "verified green": "[green]verified green[/]",
    "not verified": "[red]not verified[/]",
}
app = typer.Typer(help="Review, approve and merge merge requests.", no_args_is_help=True)

StateFilter = Literal["open", "merged", "closed", "all"]
MergeAction = Literal["approve", "merge", "close"]
MergeRequestId = Annotated[int, typer.Argument(help="Merge request id (from `specfleet mr list`).")]
Actor = Annotated[
    str | None,
    typer.Option("--as", help="Who acts (e-mail); default SPECFLEET_ACTOR or the login name."),
]
DESCRIPTION_LIMIT = 100_000  # descriptions are written by specfleet, but read from a database


def _forge(wired: Wiring) -> LocalForge:
    return LocalForge(wired.engine, wired.settings.forge_dir, wired.settings.git_timeout_seconds)


@app.command("list")
def list_(
    product: Annotated[str | None, typer.Option(help="Only this product's.")] = None,
    state: Annotated[StateFilter, typer.Option(help="open, merged, closed or all.")] = "open",
) -> None:
    """Merge requests, newest first."""
    with reported_errors():
        wired = wiring()
        with session_scope(wired.engine) as session:
            query = select(MergeRequest).order_by(col(MergeRequest.updated_at).desc())
            if product:
                query = query.where(MergeRequest.product_id == product)
            if state != "all":
                query = query.where(MergeRequest.state == state)
            rows = list(session.exec(query).all())
    if not rows:
        console.print(f"No {'' if state == 'all' else state + ' '}merge requests.")
        return
    table = Table(title=f"{len(rows)} merge requests", title_justify="left")
    columns = ("id", "product", "forge", "state", "verdict", "title", "approvals", "updated")
    for column in columns:
        table.add_column(column, no_wrap=column in ("id", "product", "state", "verdict", "updated"))
    for row in rows:
        verdict = review_facts(row.description, labels=row.labels).verdict
        table.add_row(
            str(row.id),
            escape(row.product_id),
            f"{row.forge} {escape(row.forge_ref or '')}",
            _state_text(row),
            VERDICT_STYLE.get(verdict, verdict),
            escape(row.title),
            escape(", ".join(row.approvals)) or "-",
            utc_text(row.updated_at),
        )
    console.print(table)


@app.command()
def show(
    merge_request: MergeRequestId,
    diff: Annotated[bool, typer.Option("--diff", help="Also print the changes.")] = False,
) -> None:
    """A merge request: state, branches, approvals, description and notes."""
    with reported_errors():
        wired = wiring()
        row, notes = _load(wired, merge_request)
        patch = _forge(wired).diff(merge_request) if diff and row.forge == "local" else None
    facts = Table(show_header=False, title=f"Merge request {row.id}", title_justify="left")
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("title", escape(row.title))
    facts.add_row("product", escape(row.product_id))
    facts.add_row("state", _state_text(row))
    facts.add_row("branch", escape(f"{row.branch} -> {row.target_branch}"))
    facts.add_row("head", escape(row.head_commit or "-"))
    facts.add_row("forge", escape(f"{row.forge} {row.url or ''}"))
    facts.add_row("proposal", escape(row.proposal_key or "-"))
    facts.add_row("labels", escape(", ".join(row.labels)) or "-")
    facts.add_row("approvals", escape(", ".join(row.approvals)) or "none")
    facts.add_row("updated", utc_text(row.updated_at))
    console.print(facts)
    if row.description:
        console.print(Panel(Markdown(row.description[:DESCRIPTION_LIMIT]), title="Description"))
    for note in notes:
        body = str((note.detail or {}).get("body", ""))[:DESCRIPTION_LIMIT]
        console.print(Panel(Markdown(body), title=f"Note · {utc_text(note.at)}"))
    if diff:
        if patch is None:
            console.print(f"The diff of a {row.forge} merge request is on the forge: {row.url}")
        elif patch.strip():
            console.print(Syntax(patch, "diff", theme="ansi_dark", word_wrap=True))
        else:
            console.print("No changes.")


@app.command()
def approve(merge_request: MergeRequestId, actor: Actor = None) -> None:
    """Approve an open, verified merge request (once per person)."""
    _act("approve", merge_request, actor)


@app.command()
def merge(merge_request: MergeRequestId, actor: Actor = None) -> None:
    """Merge an approved merge request into its target branch."""
    _act("merge", merge_request, actor)


@app.command()
def close(merge_request: MergeRequestId, actor: Actor = None) -> None:
    """Close without merging; the same proposal is not made again until its inputs change."""
    _act("close", merge_request, actor)


@app.command()
def revert(merge_request: MergeRequestId, actor: Actor = None) -> None:
    """Open a merge request reverting a merged one (an automerge, or any merge)."""
    from specfleet.services.merge_requests import revert_merge_request

    who = actor or current_actor()
    with reported_errors():
        wired = wiring()
        try:
            opened = revert_merge_request(wired.engine, _forge(wired), who, merge_request)
        except (MergeRequestRefused, MergeRequestNotFound) as error:
            fail(str(error), EXIT_INVALID)
    console.print(
        f"Merge request {opened} reverts merge request {merge_request}: review it with "
        f"`specfleet mr show {opened}`, then approve and merge it."
    )


AutomergeLevel = Literal["security-patch", "deterministic", "never", "spec"]


@app.command("automerge")
def automerge_opt_in(
    product: Annotated[str, typer.Argument(help="Product id.")],
    level: Annotated[
        AutomergeLevel,
        typer.Argument(help="security-patch, deterministic, never, or spec (use the spec's)."),
    ],
    actor: Actor = None,
) -> None:
    """Set a product's automerge opt-in in the registry (bounded by the policy set)."""
    from specfleet.core.db import AuditEntry as Audit
    from specfleet.core.db import Product

    who = actor or current_actor()
    with reported_errors():
        wired = wiring()
        with session_scope(wired.engine) as session:
            row = session.get(Product, product)
            if row is None:
                fail(f"no product {product!r}", EXIT_INVALID)
            assert row is not None
            row.automerge = None if level == "spec" else level
            session.add(row)
            session.add(
                Audit(
                    actor=who,
                    action="product.automerge",
                    subject_type="product",
                    subject_id=product,
                    detail={"automerge": row.automerge},
                )
            )
    shown = "the spec's `automerge:`" if level == "spec" else level
    console.print(f"{escape(product)}: automerge {escape(shown)} (capped by the policy set).")


def _act(action: MergeAction, merge_request: int, actor: str | None) -> None:
    from specfleet.services.merge_requests import act_on_merge_request

    who = actor or current_actor()
    with reported_errors():
        wired = wiring()
        try:
            state = act_on_merge_request(wired.engine, _forge(wired), who, merge_request, action)
        except (MergeRequestRefused, MergeRequestNotFound) as error:
            fail(str(error), EXIT_INVALID)
    done = {"approve": "approved", "merge": "merged", "close": "closed"}[action]
    detail = f" ({len(state.approvals)} approvals)" if action == "approve" else ""
    console.print(f"Merge request {merge_request} {done} by {escape(who)}{detail}.")


def _load(wired: Wiring, merge_request: int) -> tuple[MergeRequest, list[AuditEntry]]:
    with session_scope(wired.engine) as session:
        row = session.get(MergeRequest, merge_request)
        if row is None:
            fail(f"no merge request {merge_request}", EXIT_INVALID)
        notes = list(
            session.exec(
                select(AuditEntry)
                .where(
                    AuditEntry.action == "mr.note",
                    AuditEntry.subject_type == "merge_request",
                    AuditEntry.subject_id == str(row.id),
                )
                .order_by(col(AuditEntry.id))
            ).all()
        )
    return row, notes


def _state_text(row: MergeRequest) -> str:
    return f"{row.state} (draft)" if row.draft and row.state == "open" else row.state
