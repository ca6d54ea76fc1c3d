"""``specfleet amend PRODUCT --requirement "..."``: ask for a spec change, and follow it.

The request is recorded (who, when, what) and evaluated with trigger ``amendment``: the LLM
drafts the spec change, conflicts with earlier clauses come back to you naming them, and
otherwise the whole amended spec is re-implemented, verified and proposed as a merge request
of its own. ``--now`` runs that here and prints the outcome; without it the workers do.
``specfleet amend list PRODUCT`` shows a product's requests and where they got to.

Exit codes: 0 the request was queued, or run and answered (proposed, or a conflict to
clarify); 1 it ran and failed or needs a human; 2 usage or environment error, including
"no LLM endpoint is configured" (nothing is recorded then).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    console,
    current_actor,
    err_console,
    reported_errors,
    wiring,
)

STATE_STYLE = {
    "queued": "dim",
    "running": "dim",
    "proposed": "green",
    "conflict": "yellow",
    "needs-human": "yellow",
    "failed": "red",
}


def amend(
    product: Annotated[str, typer.Argument(help="Product id.")],
    requirement: Annotated[
        str, typer.Option("--requirement", "-r", help="What you need, in your words.")
    ],
    why: Annotated[
        str | None, typer.Option("--why", help="Why you need it (kept in the amendment).")
    ] = None,
    now: Annotated[
        bool, typer.Option("--now", help="Draft, implement and verify here, synchronously.")
    ] = False,
) -> None:
    """Ask for a change to a product's spec; specfleet amends it and re-implements it."""
    from specfleet.services.evaluations import request_amendment
    from specfleet.worker.pipeline import run_evaluation
    from specfleet.worker.pipeline.amend import amendment_for

    with reported_errors():
        wired = wiring()
        queued = request_amendment(
            wired.engine,
            current_actor(),
            product,
            requirement,
            why,
            llm_configured=bool(wired.settings.llm_base_url),
        )
        if not now:
            _enqueue(queued.evaluation_id, queued.request_id, product)
            return
        from specfleet.worker.wiring import pipeline_deps

        deps = pipeline_deps(wired.settings, engine=wired.engine)
        with console.status(f"amending {escape(product)}: drafting, implementing, verifying …"):
            result = run_evaluation(queued.evaluation_id, deps)
        request = amendment_for(wired.engine, queued.evaluation_id)
    state = request.state if request is not None else result.outcome
    style = STATE_STYLE.get(state, "bold")
    console.print(
        f"amendment request {queued.request_id} of [bold]{escape(product)}[/]: "
        f"[{style}]{state}[/] (evaluation {result.evaluation_id})"
    )
    if state == "conflict":
        conflict = result.summary.get("conflict") or {}
        clauses = ", ".join(conflict.get("clauses") or []) or "the spec"
        console.print(f"conflicts with: [bold]{escape(clauses)}[/]")
        console.print(escape(str(conflict.get("explanation") or result.reason)), soft_wrap=True)
        console.print("Nothing was changed. Clarify the request and ask again.")
        raise typer.Exit(EXIT_OK)
    if result.merge_request_url:
        console.print(f"merge request: {escape(result.merge_request_url)}")
    if result.outcome in ("proposed", "unchanged"):
        raise typer.Exit(EXIT_OK)
    message = result.error or result.reason or "unknown"
    err_console.print(f"[red]{escape(state)}:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_INVALID)


def amend_list(product: Annotated[str, typer.Argument(help="Product id.")]) -> None:
    """A product's amendment requests, newest first."""
    from specfleet.worker.pipeline.amend import amendment_requests

    with reported_errors():
        wired = wiring()
        rows = amendment_requests(wired.engine, product)
    table = Table(title=f"Amendment requests of {escape(product)}", title_justify="left")
    for column in ("id", "requested", "by", "request", "state", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        detail = row.merge_request_url or ""
        if row.conflict:
            detail = "conflicts with " + ", ".join(row.conflict.get("clauses") or [])
        elif row.state in ("needs-human", "failed"):
            detail = row.outcome_detail or ""
        table.add_row(
            str(row.id),
            row.requested_at.strftime("%Y-%m-%d %H:%M"),
            escape(row.requested_by),
            escape(row.requirement[:200]),
            f"[{STATE_STYLE.get(row.state, 'bold')}]{row.state}[/]",
            escape(detail[:300]),
        )
    console.print(table)
    if not rows:
        console.print("none")


def _enqueue(evaluation_id: int, request_id: int, product: str) -> None:
    from specfleet.cli.evaluate import dispatch

    recorded = f"amendment request {request_id} is recorded (evaluation {evaluation_id})"
    task_id = dispatch(evaluation_id, recorded)
    sent = f"task {task_id}" if task_id else "waiting for a worker"
    console.print(
        f"amendment request {request_id} of {escape(product)} is queued "
        f"(evaluation {evaluation_id}, {sent}); follow it with "
        f"`specfleet amendments {escape(product)}`"
    )
