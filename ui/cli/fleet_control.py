"""``specfleet fleet``: pause, resume and inspect the whole fleet's scheduling.

Pausing stops the scheduler from fanning out new evaluations (weekly windows, policy
publications); what is already queued or running finishes. The state is an audit entry, so
``fleet status`` can say who paused, when and why.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlmodel import col, func, select

from core.db import Evaluation, MergeRequest, Product, session_scope
from core.registry import utc_text
from scheduler.pause import Pause, fleet_paused, pause_fleet, resume_fleet
from ui.cli.common import console, current_actor, reported_errors, wiring

app = typer.Typer(help="Pause, resume and inspect the fleet.", no_args_is_help=True)


def _describe(pause: Pause) -> str:
    reason = f" ({escape(pause.reason)})" if pause.reason else ""
    return f"by {escape(pause.actor)} since {utc_text(pause.since)}{reason}"


@app.command()
def pause(
    reason: Annotated[
        str | None, typer.Option(help="Why, for the audit log and `fleet status`.")
    ] = None,
) -> None:
    """Stop scheduling new evaluations; queued and running ones still finish."""
    with reported_errors():
        engine = wiring().engine
        current, changed = pause_fleet(engine, current_actor(), reason)
    if changed:
        console.print(f"fleet paused {_describe(current)}")
        console.print("queued and running evaluations finish; `specfleet fleet resume` resumes")
    else:
        console.print(f"fleet already paused {_describe(current)}")


@app.command()
def resume() -> None:
    """Schedule evaluations again (the next tick or `run-window` fans out as usual)."""
    with reported_errors():
        engine = wiring().engine
        lifted = resume_fleet(engine, current_actor())
    if lifted is None:
        console.print("fleet is not paused; nothing to resume")
    else:
        console.print(f"fleet resumed (it was paused {_describe(lifted)})")


def _counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        statuses = dict(
            session.exec(
                select(Evaluation.status, func.count()).group_by(col(Evaluation.status))
            ).all()
        )
        open_mrs = session.exec(
            select(func.count()).select_from(MergeRequest).where(MergeRequest.state == "open")
        ).one()
        products = session.exec(
            select(func.count()).select_from(Product).where(col(Product.active).is_(True))
        ).one()
    return {
        "active products": int(products),
        "evaluations queued": int(statuses.get("queued", 0)),
        "evaluations running": int(statuses.get("running", 0)),
        "open merge requests": int(open_mrs),
        "deferred merge requests (rate limits)": _deferred_count(engine),
    }


def _deferred_count(engine: Engine) -> int:
    from core.db import Proposal

    with session_scope(engine) as session:
        return int(
            session.exec(
                select(func.count()).select_from(Proposal).where(Proposal.state == "deferred")
            ).one()
        )


@app.command()
def status() -> None:
    """Whether the fleet is paused (by whom, why) and how much work is in flight."""
    with reported_errors():
        engine = wiring().engine
        current = fleet_paused(engine)
        counts = _counts(engine)
    table = Table(title="fleet", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("state", "[bold]paused[/] " + _describe(current) if current else "running")
    for name, count in counts.items():
        table.add_row(name, str(count))
    console.print(table)
