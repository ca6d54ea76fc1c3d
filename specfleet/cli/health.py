"""``specfleet health`` and ``specfleet remediate``: a product's dependency health, and the
deterministic upgrades that would fix what a policy or an advisory asks for.

Both work on any checkout or dependency file: the spec, when there is one, names the file and
adds the runtime and the owners; without one the lock (or requirements file) is found by name.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from specfleet.cli.common import EXIT_INVALID, EXIT_OK, console, fail, reported_errors, wiring

if TYPE_CHECKING:
    from specfleet.cli.health_target import Target
    from specfleet.core.health.pins import PinSet
    from specfleet.core.health.report import HealthReport
    from specfleet.core.health.upgrades import MinimumVersion

Repo = Annotated[
    Path, typer.Argument(help="A checkout (with or without a spec) or one dependency file.")
]
SpecOption = Annotated[
    str | None,
    typer.Option(help="Spec path inside the repository [default: dataproduct.yaml, if present]."),
]
Advisories = Annotated[
    Path | None, typer.Option("--advisories", help="OSV advisory directory (offline).")
]
PipAudit = Annotated[bool, typer.Option("--pip-audit", help="Ask pip-audit instead.")]
OsvUrl = Annotated[str | None, typer.Option(help="OSV endpoint for pip-audit.")]
IndexUrl = Annotated[str | None, typer.Option(help="Package index base URL.")]
DEFAULT_SPEC = "dataproduct.yaml"


def assess_checkout(
    repo: Path,
    spec_path: str | None,
    advisories: Path | None,
    pip_audit: bool,
    osv_url: str | None,
    index_url: str | None,
) -> tuple[Target, PinSet, HealthReport, dict[Any, Any]]:
    from specfleet.cli.health_target import locate
    from specfleet.core.health.pins import read_pins
    from specfleet.core.health.report import assess

    target = locate(repo, spec_path or DEFAULT_SPEC, spec_given=spec_path is not None)
    wired = wiring()
    pinset = read_pins(target.root, target.dependencies)
    source = wired.advisory_source(advisories, pip_audit, osv_url)
    facts = wired.index_client(index_url).facts(pin.name for pin in pinset.pins)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    found = source.advisories_for(exact) if exact else {}
    runtime = target.runtime or (
        f"python{pinset.python_target}" if pinset.python_target else "unknown"
    )
    report = assess(
        target.product_id,
        runtime,
        pinset.pins,
        pinset.problems,
        facts,
        found,
        source.name,
        dt.date.today(),
        pinset.files,
    )
    return target, pinset, report, facts


def health(
    repo: Repo,
    spec: SpecOption = None,
    advisories: Advisories = None,
    pip_audit: PipAudit = False,
    osv_url: OsvUrl = None,
    index_url: IndexUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every pin).")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every pin, not only vulnerable and outdated ones.")
    ] = False,
) -> None:
    """Each pin with its latest version, age, yanked state and advisories.

    Vulnerable pins come first, then outdated ones (--all lists every pin). Piped output is
    plain text at full width. Exits 1 when a pin has a known vulnerability (like pip-audit).
    """
    from specfleet.cli.health_render import print_report, report_as_dict

    with reported_errors():
        _, _, report, _ = assess_checkout(repo, spec, advisories, pip_audit, osv_url, index_url)
    if as_json:
        console.print_json(json.dumps(report_as_dict(report)))
    else:
        print_report(console, report, show_all)
    raise typer.Exit(EXIT_INVALID if report.vulnerable else EXIT_OK)


def remediate(
    repo: Repo,
    spec: SpecOption = None,
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
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Edit a uv.lock in place instead of running `uv lock` (no index needed).",
        ),
    ] = False,
) -> None:
    """Propose (and with --write apply) the upgrades advisories and policy floors ask for.

    Only the pins that must change are changed, each file in its own format: requirements
    and pyproject.toml in place, a compiled requirements.txt with uv pip compile, uv.lock with
    uv lock, poetry.lock and Pipfile.lock by an in-place edit. A file that cannot be parsed is
    reported and never rewritten.
    """
    from dataclasses import replace

    from specfleet.agent.remediators.dependencies import apply_proposal, propose
    from specfleet.cli.health_render import print_proposal
    from specfleet.cli.health_target import python_version
    from specfleet.core.health.report import runtime_support
    from specfleet.core.health.upgrades import UpgradePolicy

    policy = UpgradePolicy(
        allow_major=allow_major,
        min_release_age_days=min_release_age,
        minimums=tuple(_minimum(text) for text in minimum or ()),
    )
    with reported_errors():
        target, pinset, report, facts = assess_checkout(
            repo, spec, advisories, pip_audit, osv_url, index_url
        )
        python, why = python_version(target, pinset.python_target)
        report = replace(report, runtime=runtime_support(f"python{python}", report.checked_on))
        proposal = propose(target.root, pinset, report, facts, policy, dt.date.today())
        print_proposal(console, proposal)
        console.print(f"Python target {python}: {why}", soft_wrap=True)
        for problem in pinset.problems:
            if problem.file in pinset.unreadable:
                console.print(
                    f"{problem.file}:{problem.line}: {problem.reason}; this file could not be "
                    "parsed and is skipped: it is never rewritten",
                    soft_wrap=True,
                    markup=False,
                )
        if write and not proposal.empty:
            written = apply_proposal(target.root, pinset, proposal, python, use_tools=not in_place)
            console.print(f"wrote {', '.join(str(path) for path in written)}", soft_wrap=True)
    raise typer.Exit(EXIT_INVALID if proposal.blocked or pinset.unreadable else EXIT_OK)


def _minimum(text: str) -> MinimumVersion:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import canonicalize_name

    from specfleet.core.health.upgrades import MinimumVersion

    rule, _, requirement = text.partition(":")
    name = requirement.split(">")[0].split("=")[0].split("<")[0].split("~")[0].strip()
    try:
        specifier = SpecifierSet(requirement[len(name) :])
    except InvalidSpecifier:
        fail(f"--minimum {text!r}: expected RULE:PACKAGE>=VERSION")
    if not rule or not name:
        fail(f"--minimum {text!r}: expected RULE:PACKAGE>=VERSION")
    return MinimumVersion(canonicalize_name(name), specifier, rule, allow_major=False)
