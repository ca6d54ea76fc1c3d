"""``specfleet agent``: audit the planner's guard rails on a plan file.

``specfleet agent check-edits EDITS.json --repo DIR`` judges every edit of a plan exactly as
the planning loop would before writing anything, and prints per edit ``accepted`` or the
reason it is refused, then the files the guard rails protect in that repository (existing
tests, test configuration, the spec's fixtures, CI and interpreter start-up files: decided in
:mod:`agent.protected`). Exit 0 when every edit is accepted, 1 when any is refused (or the plan
file is not a plan), 2 when a file or the repository cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from specfleet.agent.guards import GuardContext, GuardLimits, review_plan
from specfleet.agent.paths import repository_files
from specfleet.agent.plan import PlanInvalid, read_plan_file
from specfleet.agent.protected import Evidence, ProtectedFile, evidence_from_spec, protected_files
from specfleet.cli.common import EXIT_INVALID, EXIT_OK, console, fail, reported_errors, wiring
from specfleet.core.spec.loader import check_spec_file

app = typer.Typer(help="The LLM planner: audit its guard rails.", no_args_is_help=True)


@app.command("check-edits")
def check_edits(
    edits: Annotated[Path, typer.Argument(help="A plan file (JSON, the planner's format).")],
    repo: Annotated[Path, typer.Option(help="The product repository the plan applies to.")],
    spec: Annotated[
        str, typer.Option(help="Spec path inside the repository.")
    ] = "dataproduct.yaml",
    protect: Annotated[
        list[str] | None,
        typer.Option(help="Glob of files the policy protects (repeatable), e.g. 'sql/prod/*'."),
    ] = None,
    finding: Annotated[
        list[str] | None,
        typer.Option(
            help="A rule id the current code's policy scan reports (repeatable); a plan citing "
            "any other rule is refused. Without it, citations are not checked."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Validate a plan against a repository; print per edit accepted or why it is refused."""
    with reported_errors():
        settings = wiring().settings
        if not repo.is_dir():
            fail(f"{repo}: not a directory")
        try:
            plan = read_plan_file(edits)
        except PlanInvalid as error:
            fail(str(error), EXIT_INVALID)
        checked = check_spec_file(repo / spec) if (repo / spec).is_file() else None
        evidence: Evidence = evidence_from_spec(checked.spec if checked else None)
        context = GuardContext(
            spec_path=spec,
            known_secrets=tuple(settings.secret_values()),
            limits=GuardLimits(protected=tuple(protect or ())),
            evidence=evidence,
            baseline_rules=frozenset(finding) if finding is not None else None,
        )
        review = review_plan(plan, repo, context)
        protected = protected_files(repository_files(repo), evidence)
    if as_json:
        rows = [
            {
                "edit": r.index,
                "kind": r.kind,
                "path": r.path,
                "accepted": r.accepted,
                "reason": r.reason,
            }
            for r in review.edits
        ]
        shown = [{"path": item.path, "why": item.why} for item in protected]
        console.print_json(
            json.dumps(
                {
                    "accepted": review.accepted,
                    "edits": rows,
                    "protected": shown,
                    "protected_patterns": list(protect or ()),
                }
            )
        )
    else:
        table = Table(title=f"{edits}: {len(plan.edits)} edits against {repo}")
        table.add_column("#", justify="right")
        table.add_column("kind")
        table.add_column("path", overflow="fold")
        table.add_column("verdict", overflow="fold")
        for r in review.edits:
            verdict = "accepted" if r.accepted else f"rejected: {r.reason}"
            table.add_row(str(r.index) if r.index else "amend", r.kind, r.path, verdict)
        console.print(table)
        _print_protected(protected, protect or ())
        refused = len(review.rejected)
        console.print(
            "every edit accepted" if not refused else f"{refused} rejected; nothing may be written"
        )
    raise typer.Exit(EXIT_OK if review.accepted else EXIT_INVALID)


def _print_protected(protected: list[ProtectedFile], patterns: list[str]) -> None:
    """What no plan may modify in this repository, and why (from specfleet.agent.protected)."""
    table = Table(title="protected evidence (a plan may add new test files, never change these)")
    table.add_column("path", overflow="fold")
    table.add_column("why", overflow="fold")
    for item in protected:
        table.add_row(item.path, item.why)
    for pattern in patterns:
        table.add_row(pattern, "the policy protects it (--protect)")
    console.print(table)
