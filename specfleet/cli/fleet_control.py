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

from specfleet.cli.common import console, current_actor, reported_errors, wiring
from specfleet.core.db import Evaluation, MergeRequest, Product, session_scope
from specfleet.core.fleetstate import (
    FleetState,
    Probe,
    format_age,
    read_fleet_state,
    redis_workers_seen,
)
from specfleet.core.registry import utc_text
from specfleet.core.settings import Settings
from specfleet.scheduler.pause import Pause, fleet_paused, pause_fleet, resume_fleet

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


def _probes(settings: Settings) -> tuple[Probe | None, Probe | None]:
    """(broker depth, workers seen) when the broker is Redis; embedded mode has neither."""
    from specfleet.core.metrics import redis_queue_depth
    from specfleet.worker.app import broker_urls

    broker = broker_urls(settings)[0]
    if not broker.startswith(("redis://", "rediss://")):
        return None, None
    return redis_queue_depth(broker), redis_workers_seen(broker)


def _state_rows(state: FleetState) -> list[tuple[str, str]]:
    unknown = "n/a (embedded broker)"
    return [
        ("broker depth", unknown if state.broker_depth is None else str(state.broker_depth)),
        ("oldest queued", format_age(state.oldest_queued_seconds)),
        ("oldest running", format_age(state.oldest_running_seconds)),
        ("leases expired", str(state.leases_expired)),
        (
            "workers seen (last minute)",
            unknown if state.workers_seen is None else str(state.workers_seen),
        ),
        ("workers holding leases", str(state.lease_owners)),
    ]


def sandbox_status_line(setting: str) -> str:
    if setting == "none":
        return (
            "[bold red]WARNING: SPECFLEET_SANDBOX=none: product code is built and tested "
            "WITHOUT a sandbox (full network and filesystem access)[/]"
        )
    return ""


def _deferred_count(engine: Engine) -> int:
    from specfleet.core.db import Proposal

    with session_scope(engine) as session:
        return int(
            session.exec(
                select(func.count()).select_from(Proposal).where(Proposal.state == "deferred")
            ).one()
        )


@app.command()
def status() -> None:
    """Whether the fleet is paused, how much work is in flight, queue ages, workers seen."""
    with reported_errors():
        wired = wiring()
        engine = wired.engine
        current = fleet_paused(engine)
        counts = _counts(engine)
        state = read_fleet_state(engine, *_probes(wired.settings))
    sandbox_line = sandbox_status_line(wired.settings.sandbox)
    if sandbox_line:
        console.print(sandbox_line)  # first, before the table
    table = Table(title="fleet", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("state", "[bold]paused[/] " + _describe(current) if current else "running")
    for name, count in counts.items():
        table.add_row(name, str(count))
    for name, value in _state_rows(state):
        table.add_row(name, value)
    console.print(table)
