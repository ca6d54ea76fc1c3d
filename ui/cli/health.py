"""``specfleet health`` and ``specfleet remediate``: a product's dependency health, and the
deterministic upgrades that would fix what a policy or an advisory asks for."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from rich.markup import escape
from rich.table import Table

from agent.remediators.dependencies import DependencyProposal, apply_proposal, propose
from core.health.pins import read_pins
from core.health.report import HealthReport, assess
from core.health.upgrades import MinimumVersion, UpgradePolicy
from core.spec import load_spec
from ui.cli.common import EXIT_INVALID, EXIT_OK, console, fail, reported_errors, wiring

Repo = Annotated[Path, typer.Argument(help="The product's repository (a checkout).")]
SpecOption = Annotated[str, typer.Option(help="Spec path inside the repository.")]
Advisories = Annotated[
    Path | None, typer.Option("--advisories", help="OSV advisory directory (offline).")
]
PipAudit = Annotated[bool, typer.Option("--pip-audit", help="Ask pip-audit instead.")]
OsvUrl = Annotated[str | None, typer.Option(help="OSV endpoint for pip-audit.")]
IndexUrl = Annotated[str | None, typer.Option(help="Package index base URL.")]


def _assess(
    repo: Path,
    spec_path: str,
    advisories: Path | None,
    pip_audit: bool,
    osv_url: str | None,
    index_url: str | None,
) -> tuple[Any, Any, HealthReport, dict[Any, Any]]:
    wired = wiring()
    spec = load_spec(repo / spec_path)
    pinset = read_pins(repo, spec.implementation.dependencies)
    source = wired.advisory_source(advisories, pip_audit, osv_url)
    facts = wired.index_client(index_url).facts(pin.name for pin in pinset.pins)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    found = source.advisories_for(exact) if exact else {}
    report = assess(
        spec.id,
        spec.implementation.runtime,
        pinset.pins,
        pinset.problems,
        facts,
        found,
        source.name,
        dt.date.today(),
        pinset.files,
    )
    return spec, pinset, report, facts


def health(
    repo: Repo,
    spec: SpecOption = "dataproduct.yaml",
    advisories: Advisories = None,
    pip_audit: PipAudit = False,
    osv_url: OsvUrl = None,
    index_url: IndexUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each pin with its latest version, age, yanked state and advisories.

    Exits 1 when a pin has a known vulnerability (like pip-audit), 0 otherwise.
    """
    with reported_errors():
        _, _, report, _ = _assess(repo, spec, advisories, pip_audit, osv_url, index_url)
    if as_json:
        console.print_json(json.dumps(report_as_dict(report)))
    else:
        print_report(report)
    raise typer.Exit(EXIT_INVALID if report.vulnerable else EXIT_OK)


def remediate(
    repo: Repo,
    spec: SpecOption = "dataproduct.yaml",
    advisories: Advisories = None,
    pip_audit: PipAudit = False,
    osv_url: OsvUrl = None,
    index_url: IndexUrl = None,
    minimum: Annotated[
        list[str] | None,
        typer.Option(help="Policy floor as RULE:REQUIREMENT, e.g. ORG-PY-004:pandas>=2.2."),
    ] = None,
    allow_major: Annotated[bool, typer.Option(help="May cross major versions.")] = False,
    min_release_age: Annotated[int, typer.Option(help="Minimum release age in days.")] = 0,
    write: Annotated[bool, typer.Option("--write", help="Apply the edits to the files.")] = False,
) -> None:
    """Propose (and with --write apply) the upgrades advisories and policy floors ask for."""
    policy = UpgradePolicy(
        allow_major=allow_major,
        min_release_age_days=min_release_age,
        minimums=tuple(_minimum(text) for text in minimum or ()),
    )
    with reported_errors():
        loaded, pinset, report, facts = _assess(
            repo, spec, advisories, pip_audit, osv_url, index_url
        )
        proposal = propose(repo, pinset, report, facts, policy, dt.date.today())
        print_proposal(proposal)
        if write and not proposal.empty:
            python = loaded.implementation.runtime.removeprefix("python")
            written = apply_proposal(repo, pinset, proposal, python)
            console.print(f"wrote {', '.join(str(path) for path in written)}")
    raise typer.Exit(EXIT_INVALID if proposal.blocked else EXIT_OK)


def _minimum(text: str) -> MinimumVersion:
    rule, _, requirement = text.partition(":")
    name = requirement.split(">")[0].split("=")[0].split("<")[0].split("~")[0].strip()
    try:
        specifier = SpecifierSet(requirement[len(name) :])
    except InvalidSpecifier:
        fail(f"--minimum {text!r}: expected RULE:PACKAGE>=VERSION")
    if not rule or not name:
        fail(f"--minimum {text!r}: expected RULE:PACKAGE>=VERSION")
    return MinimumVersion(canonicalize_name(name), specifier, rule, allow_major=False)


def print_report(report: HealthReport) -> None:
    runtime = report.runtime
    eol = f", end of life {runtime.end_of_life}" if runtime.end_of_life else ""
    console.print(
        f"[bold]{report.product_id}[/]: {len(report.pins)} pins, "
        f"{len(report.vulnerable)} vulnerable; runtime {runtime.runtime} ({runtime.status}{eol}); "
        f"advisories from {report.advisory_source}"
    )
    table = Table(show_lines=False)
    for heading in ("package", "pinned", "latest", "age (days)", "advisories", "fixed in"):
        table.add_column(heading, no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("notes", overflow="fold")
    for item in report.pins:
        advisories = "\n".join(
            f"[red]{advisory.id}[/]" + (f" ({advisory.severity})" if advisory.severity else "")
            for advisory in item.advisories
        )
        notes = list(item.notes)
        if item.yanked:
            notes.insert(0, "YANKED")
        table.add_row(
            item.pin.name,
            item.current or escape(str(item.pin.specifier) or "*"),
            item.latest or "?",
            "" if item.age_days is None else str(item.age_days),
            advisories,
            item.fixed_in or "",
            f"{escape(item.pin.file)}:{item.pin.line}",
            escape("; ".join(notes)),
        )
    console.print(table)
    if report.problems:
        problems = Table(title="Lines not understood", title_justify="left")
        problems.add_column("where")
        problems.add_column("reason", overflow="fold")
        for problem in report.problems:
            problems.add_row(f"{problem.file}:{problem.line}", escape(problem.reason))
        console.print(problems)


def print_proposal(proposal: DependencyProposal) -> None:
    if proposal.empty and not proposal.blocked:
        console.print("Nothing to change: no pin needs an upgrade.")
        return
    if proposal.upgrades:
        table = Table(title="Upgrades", title_justify="left")
        for heading in ("package", "from", "to", "why"):
            table.add_column(heading, overflow="fold")
        for upgrade in proposal.upgrades:
            why = "\n".join(escape(reason.render()) for reason in upgrade.reasons)
            target = upgrade.target + (" [yellow](major)[/]" if upgrade.crosses_major else "")
            table.add_row(upgrade.package, upgrade.current, target, why)
        console.print(table)
    if proposal.blocked:
        table = Table(title="Blocked: needs a person or the planner", title_justify="left")
        for heading in ("package", "pinned", "why it cannot move", "asked by"):
            table.add_column(heading, overflow="fold")
        for item in proposal.blocked:
            asked = ", ".join(reason.id for reason in item.reasons)
            table.add_row(item.package, item.current or "", escape(item.why), asked)
        console.print(table)
    diff = proposal.diff()
    if diff:
        console.print(escape(diff), highlight=False, soft_wrap=True)


def report_as_dict(report: HealthReport) -> dict[str, Any]:
    return {
        "product": report.product_id,
        "checked_on": report.checked_on.isoformat(),
        "advisory_source": report.advisory_source,
        "runtime": {
            "runtime": report.runtime.runtime,
            "status": report.runtime.status,
            "end_of_life": report.runtime.end_of_life.isoformat()
            if report.runtime.end_of_life
            else None,
        },
        "pins": [
            {
                "package": item.pin.name,
                "file": item.pin.file,
                "line": item.pin.line,
                "specifier": str(item.pin.specifier),
                "pinned": item.current,
                "latest": item.latest,
                "released_at": item.released_at.isoformat() if item.released_at else None,
                "age_days": item.age_days,
                "yanked": item.yanked,
                "fixed_in": item.fixed_in,
                "advisories": [
                    {
                        "id": advisory.id,
                        "aliases": list(advisory.aliases),
                        "severity": advisory.severity,
                        "fixed_versions": list(advisory.fixed_versions),
                        "summary": advisory.summary,
                    }
                    for advisory in item.advisories
                ],
                "notes": list(item.notes),
            }
            for item in report.pins
        ],
        "problems": [
            {"file": problem.file, "line": problem.line, "reason": problem.reason}
            for problem in report.problems
        ],
    }
