"""``specfleet evaluate PRODUCT``: queue one product's evaluation, or run it here with --now.

``--now`` runs the same pipeline the workers run (``specfleet.worker.pipeline.run_evaluation``),
synchronously, and prints its stages and outcome. Exit codes: 0 the evaluation finished
(any outcome but ``failed`` and ``needs-human``), 1 it failed or needs a person (the reason,
what the owner can do and the verification report are printed), 2 usage or environment
error.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlmodel import Session, col, select

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    console,
    current_actor,
    err_console,
    fail,
    reported_errors,
    wiring,
)
from specfleet.core.db import StageResult
from specfleet.core.errors import FleetPaused

# amendments are asked for with `specfleet amend`, which records what the owner wants
TRIGGERS = ("weekly", "policy", "manual")
OUTCOME_STYLE = {
    "proposed": "green",
    "no-op": "dim",
    "no-change": "green",
    "unchanged": "green",
    "suppressed": "yellow",
    "needs-human": "yellow",
    "conflict": "yellow",
    "failed": "red",
}


def evaluate(
    product: Annotated[str, typer.Argument(help="Product id.")],
    now: Annotated[
        bool, typer.Option("--now", help="Run the evaluation here, synchronously.")
    ] = False,
    window: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W48 (default: this week).")
    ] = None,
    trigger: Annotated[str, typer.Option(help="Why: weekly, policy or manual.")] = "manual",
    force: Annotated[
        bool, typer.Option("--force", help="Evaluate even while the fleet is paused.")
    ] = False,
) -> None:
    """Evaluate one product: queue it for the workers, or with --now run it here."""
    if trigger not in TRIGGERS:
        fail(f"--trigger {trigger!r}: expected one of {', '.join(TRIGGERS)}", EXIT_USAGE)
    # imported here: the pipeline pulls in the verification stack
    from specfleet.services.evaluations import request_evaluation
    from specfleet.worker.pipeline import run_evaluation
    from specfleet.worker.wiring import pipeline_deps

    with reported_errors():
        wired = wiring()
        try:
            requested = request_evaluation(
                wired.engine, current_actor(), product, window, trigger, force
            )
        except FleetPaused as paused:
            fail(
                f"{paused}; `--force` evaluates anyway, `specfleet fleet resume` lifts the pause",
                EXIT_INVALID,
            )
        evaluation_id, chosen = requested.evaluation_id, requested.window
        if not now:
            _enqueue(evaluation_id, product, chosen)
            return
        deps = pipeline_deps(wired.settings, engine=wired.engine)
        with console.status(f"evaluating {escape(product)} ({chosen}, {trigger}) …"):
            result = run_evaluation(evaluation_id, deps)
        _print_stages(wired.engine, evaluation_id)
    style = OUTCOME_STYLE.get(result.outcome, "bold")
    console.print(
        f"evaluation {result.evaluation_id} of [bold]{escape(result.product_id)}[/] "
        f"({result.window}): [{style}]{result.outcome}[/]"
    )
    if result.merge_request_url:
        console.print(f"merge request: {escape(result.merge_request_url)}")
    if result.outcome == "failed":
        err_console.print(f"[red]error:[/] {escape(result.error or 'unknown')}", soft_wrap=True)
        for problem in result.summary.get("problems") or []:
            err_console.print(f"  {escape(str(problem))}", soft_wrap=True)
        raise typer.Exit(EXIT_INVALID)
    if result.reason:
        console.print(f"why: {escape(result.reason)}", soft_wrap=True)
    if result.outcome == "needs-human":
        print_needs_human(result.summary)
        raise typer.Exit(EXIT_INVALID)
    raise typer.Exit(EXIT_OK)


def print_needs_human(summary: dict[str, Any]) -> None:
    """What the owner can do, then the verification report the decision rests on."""
    action = summary.get("action")
    if action:
        console.print(f"what you can do: {escape(str(action))}", soft_wrap=True)
    report = summary.get("verification")
    if report:
        console.print("\n[bold]Verification report[/]")
        console.print(str(report), markup=False, highlight=False, soft_wrap=True)


def dispatch(evaluation_id: int, queued: str) -> str | None:
    """Send a queued evaluation to the workers; the task id, or None when this installation
    has no Celery tasks. ``queued`` says what was recorded, for the broker-refused message."""
    try:
        from specfleet.worker.tasks import evaluate as evaluate_task
    except ImportError:
        return None
    try:
        return str(evaluate_task.delay(evaluation_id).id)
    except Exception as error:  # the broker's own errors (kombu) name what is unreachable
        fail(f"{queued}, but the broker refused it: {error}")


def _enqueue(evaluation_id: int, product: str, window: str) -> None:
    task_id = dispatch(evaluation_id, f"evaluation {evaluation_id} is queued")
    if task_id is None:
        console.print(
            f"evaluation {evaluation_id} of {escape(product)} ({window}) is queued in the "
            "database, but this installation has no Celery tasks (worker/tasks.py) to notify a "
            "worker; run it here with `specfleet evaluate "
            f"{escape(product)} --now`"
        )
        return
    console.print(
        f"queued evaluation {evaluation_id} of {escape(product)} ({window}); task {task_id}"
    )


def _print_stages(engine: Any, evaluation_id: int) -> None:
    with Session(engine) as session:
        rows = session.exec(
            select(StageResult)
            .where(StageResult.evaluation_id == evaluation_id)
            .order_by(col(StageResult.id))
        ).all()
    table = Table(title=f"Evaluation {evaluation_id}", title_justify="left")
    table.add_column("stage", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("ms", justify="right")
    table.add_column("detail", overflow="fold")
    for row in rows:
        table.add_row(row.stage, row.outcome, str(row.duration_ms), escape(_detail(row.detail)))
    console.print(table)


def _detail(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    parts = []
    for key, value in detail.items():
        if value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value[:6]) + (" …" if len(value) > 6 else "")
        text = str(value)
        if key in ("commit", "key") and len(text) > 12:
            text = text[:12]
        parts.append(f"{key}: {text}")
    return "; ".join(parts)[:400]
