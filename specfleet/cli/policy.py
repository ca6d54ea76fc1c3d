"""``specfleet policy``: publish packs, read versions and diffs, check products, compliance."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
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
from specfleet.core.errors import ConfigurationError, InputError
from specfleet.core.health.report import HealthReport
from specfleet.core.spec import load_spec
from specfleet.core.windows import iso_week
from specfleet.policies.check import ProductCheck, Subject, check_subject, run_semgrep_rules
from specfleet.policies.checks.semgrep import validate_semgrep_rules
from specfleet.policies.compliance import compliance_matrix, record_check, rollout
from specfleet.policies.diff import PolicyDiff
from specfleet.policies.packs import load_pack
from specfleet.policies.store import first_published, list_policy_sets, load_policy_set

app = typer.Typer(help="Organisation policies: publish, diff, check, compliance.")

STATUS_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[red]fail[/]",
    "not-applicable": "[dim]n/a[/]",
    "unknown": "[yellow]?[/]",
}


@app.command("publish")
def publish_(
    pack: Annotated[Path, typer.Argument(help="Policy pack folder (rules/, semgrep/).")],
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version.")],
) -> None:
    """Publish a pack as the next immutable policy set; identical content is a no-op."""
    from specfleet.services.policies import publish_policy_pack
    from specfleet.worker.tasks import publish_dispatch

    with reported_errors():
        wired = wiring()
        published = publish_policy_pack(
            wired.engine,
            pack,
            message,
            current_actor(),
            dispatch=publish_dispatch(wired.settings),
        )
    outcome, queued, paused = published.outcome, published.queued, published.paused
    version = outcome.policy_set.version
    if not outcome.created:
        console.print(
            f"Nothing published: this content is already policy set v{version} "
            f"({outcome.policy_set.content_hash[:12]})."
        )
        return
    console.print(
        f"[green]published[/] policy set [bold]v{version}[/] with "
        f"{len(outcome.policy_set.rules)} rules ({outcome.policy_set.content_hash[:12]})"
    )
    print_diff(outcome.diff, f"v{version - 1}" if version > 1 else "nothing", f"v{version}")
    if outcome.affected:
        table = Table(title="Products to re-evaluate", title_justify="left")
        table.add_column("rule")
        table.add_column("products", overflow="fold")
        for rule_id, product_ids in sorted(outcome.affected.items()):
            table.add_row(rule_id, ", ".join(product_ids))
        console.print(table)
        waiting = published.already_queued
        already = f"; {waiting} already queued for this week" if waiting else ""
        console.print(f"{queued} evaluations queued (trigger: policy){already}.")
        if queued and paused:
            console.print(
                "[yellow]the fleet is paused[/]: they wait in the queue and are sent to the "
                "workers once `specfleet fleet resume` lifts the pause."
            )
    else:
        console.print("No registered product is affected.")
    for rule_id, missing in sorted(outcome.unknown_products.items()):
        err_console.print(
            f"[yellow]warning:[/] {rule_id} is scoped to unregistered product(s): "
            f"{', '.join(missing)}"
        )


@app.command("list")
def list_() -> None:
    """Every published policy set, newest first."""
    with reported_errors():
        sets = list_policy_sets(wiring().engine)
    table = Table(title=f"{len(sets)} policy sets", title_justify="left")
    for heading in ("version", "rules", "published", "by", "message", "content"):
        table.add_column(heading, overflow="fold")
    for record, count in sets:
        table.add_row(
            f"v{record.version}",
            str(count),
            record.published_at.strftime("%Y-%m-%d %H:%M"),
            escape(record.published_by),
            escape(record.message),
            record.content_hash[:12],
        )
    console.print(table)


@app.command()
def show(
    version: Annotated[int | None, typer.Argument(help="Version (default: the latest).")] = None,
) -> None:
    """The rules of one policy set."""
    with reported_errors():
        policy_set = load_policy_set(wiring().engine, version)
    console.print(
        f"[bold]policy set v{policy_set.version}[/], published "
        f"{policy_set.published_at:%Y-%m-%d %H:%M} UTC by {escape(policy_set.published_by)}: "
        f"{escape(policy_set.message)}"
    )
    table = Table()
    for heading in ("rule", "kind", "severity", "effective", "scope", "title / why"):
        table.add_column(heading, overflow="fold")
    for rule in policy_set.rules:
        scope = rule.scope
        scoped = ", ".join(
            [*(f"tag:{tag}" for tag in scope.tags), *scope.runtimes, *scope.products]
        )
        table.add_row(
            rule.id,
            rule.kind,
            rule.severity,
            rule.effective.isoformat(),
            scoped or "all",
            f"[bold]{escape(rule.title)}[/]\n{escape(rule.why.strip())}",
        )
    console.print(table)


@app.command()
def diff(
    old: Annotated[int, typer.Argument(help="Older version.")],
    new: Annotated[int, typer.Argument(help="Newer version.")],
) -> None:
    """Rules added, changed (old and new values) and removed between two versions."""
    from specfleet.policies.diff import diff_rules

    with reported_errors():
        engine = wiring().engine
        before, after = load_policy_set(engine, old), load_policy_set(engine, new)
    print_diff(diff_rules(before.rules, after.rules), f"v{old}", f"v{new}")


def print_diff(changes: PolicyDiff, old: str, new: str) -> None:
    if changes.empty:
        console.print(f"No rule differs between {old} and {new}.")
        return
    table = Table(title=f"Changes from {old} to {new}", title_justify="left", show_lines=True)
    for heading in ("", "rule", "what"):
        table.add_column(heading, overflow="fold")
    for rule in changes.added:
        table.add_row(
            "[green]added[/]", rule.id, f"{escape(rule.title)} ({rule.kind}, {rule.severity})"
        )
    for change in changes.changed:
        lines = [
            escape(f"{field.path}: {json.dumps(field.old)} → {json.dumps(field.new)}")
            for field in change.fields
        ]
        table.add_row("[yellow]changed[/]", change.rule_id, "\n".join(lines))
    for rule in changes.removed:
        table.add_row("[red]removed[/]", rule.id, escape(rule.title))
    console.print(table)


@app.command()
def check(
    repo: Annotated[
        Path,
        typer.Argument(help="A checkout (with or without a spec) or one dependency file."),
    ],
    spec: Annotated[
        str | None,
        typer.Option(help="Spec path in the repository [default: dataproduct.yaml, if present]."),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Policy set version (default: the latest).")
    ] = None,
    pack: Annotated[
        Path | None, typer.Option(help="Check against an unpublished pack folder instead.")
    ] = None,
    advisories: Annotated[
        Path | None, typer.Option("--advisories", help="OSV advisory directory (offline).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a checkout against the policies; exit 1 when a rule fails.

    Works on any checkout or dependency file: without a spec the rules are scoped by the
    directory's name and the Python target its files state, spec rules show as "?" and only
    a product with a spec is recorded in the compliance history.
    """
    with reported_errors():
        wired = wiring()
        if pack is not None:
            unpublished = load_pack(pack, validate_semgrep=validate_semgrep_rules)
            rules, semgrep_files, policy_version = (
                unpublished.rules,
                unpublished.semgrep_files,
                None,
            )
        else:
            policy_set = load_policy_set(wired.engine, version)
            rules, semgrep_files = policy_set.rules, policy_set.semgrep_files
            policy_version = policy_set.version
        subject, health, health_problem = _subject_and_health(
            repo, spec, advisories, any(rule.kind == "dependency" for rule in rules)
        )
        result = check_subject(
            repo if repo.is_dir() else repo.resolve().parent,
            subject,
            rules,
            semgrep_files,
            health,
            run_semgrep_rules,
            policy_version,
        )
        recorded = record_check(wired.engine, result) if subject.spec is not None else 0
    if as_json:
        console.print_json(json.dumps(check_as_dict(result)))
    else:
        if subject.spec is None:
            console.print(
                f"[dim]no spec: checked as {escape(subject.product_id)}"
                f"{', ' + subject.runtime if subject.runtime else ''}[/]"
            )
        print_check(result)
        if health_problem:
            err_console.print(f"[yellow]dependency rules not checked:[/] {escape(health_problem)}")
        if recorded:
            console.print(
                f"[dim]recorded in the compliance history ({iso_week(dt.date.today())})[/]"
            )
    failed = any(status == "fail" for status in result.statuses.values())
    raise typer.Exit(EXIT_INVALID if failed else EXIT_OK)


def _subject_and_health(
    repo: Path, spec: str | None, advisories: Path | None, needs_health: bool
) -> tuple[Subject, HealthReport | None, str | None]:
    """What the rules judge, and the dependency health when a rule needs it (or why not)."""
    from specfleet.cli.health import DEFAULT_SPEC, assess_checkout

    spec_name = spec or DEFAULT_SPEC
    spec_path = (repo if repo.is_dir() else repo.resolve().parent) / spec_name
    if spec is not None and not spec_path.is_file():
        raise InputError(f"{spec_path}: no such file (named by --spec)")
    loaded = load_spec(spec_path) if spec_path.is_file() else None
    subject = (
        Subject.of_spec(loaded, spec_name)
        if loaded is not None
        else Subject(repo.resolve().name, has_code=repo.is_dir())
    )
    if not needs_health:
        return subject, None, None
    try:
        _, pinset, report, _ = assess_checkout(repo, spec, advisories, False, None, None)
    except (ConfigurationError, InputError) as error:
        return subject, None, str(error)
    if loaded is None and pinset.python_target:
        subject = replace(subject, runtime=f"python{pinset.python_target}")
    return subject, report, None


def print_check(result: ProductCheck) -> None:
    statuses: list[str] = list(result.statuses.values())
    counts = {status: statuses.count(status) for status in STATUS_STYLE}
    console.print(
        f"[bold]{result.product_id}[/] against "
        f"{'policy set v' + str(result.policy_version) if result.policy_version else 'the pack'}: "
        + ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    )
    table = Table(show_lines=False)
    table.add_column("rule", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("where", overflow="fold", max_width=20)
    table.add_column("finding", overflow="fold", min_width=24)
    table.add_column("fix", no_wrap=True)
    for rule_id, status in sorted(result.statuses.items()):
        own = result.findings_of(rule_id)
        if not own:
            table.add_row(rule_id, STATUS_STYLE[status], "", "", "")
        for finding in own:
            table.add_row(
                rule_id,
                STATUS_STYLE[status],
                escape(finding.location),
                f"[dim]{finding.severity}[/] {escape(finding.message)}",
                "auto" if finding.fixable else "",
            )
    console.print(table)


def check_as_dict(result: ProductCheck) -> dict[str, object]:
    return {
        "product": result.product_id,
        "policy_version": result.policy_version,
        "checked_at": result.checked_at.isoformat(),
        "statuses": dict(result.statuses),
        "findings": [
            {
                "rule": finding.rule_id,
                "kind": finding.kind,
                "severity": finding.severity,
                "status": finding.status,
                "file": finding.file,
                "line": finding.line,
                "message": finding.message,
                "fixable": finding.fixable,
            }
            for finding in result.findings
        ],
    }


@app.command()
def compliance(
    rule: Annotated[str | None, typer.Option(help="Show this rule's rollout week by week.")] = None,
    version: Annotated[int | None, typer.Option(help="Policy set (default: latest).")] = None,
) -> None:
    """Products x rules of a policy set; with --rule, that rule's rollout over the weeks."""
    with reported_errors():
        engine = wiring().engine
        policy_set = load_policy_set(engine, version)
        rule_ids = [item.id for item in policy_set.rules]
        if rule is not None:
            chosen = policy_set.rule(rule)
            if chosen is None:
                raise InputError(f"policy set v{policy_set.version} has no rule {rule!r}")
            published = first_published(engine, rule) or dt.date.today()
            weeks = rollout(engine, rule, published, dt.date.today())
        else:
            matrix = compliance_matrix(engine, rule_ids)
    if rule is not None:
        table = Table(title=f"Rollout of {rule} since {published}", title_justify="left")
        for heading in ("week", "passing", "failing", "unknown", "checks that week"):
            table.add_column(heading, justify="right")
        for week in weeks:
            table.add_row(
                week.window,
                str(week.passing),
                str(week.failing),
                str(week.unknown),
                str(week.checked),
            )
        console.print(table)
        return
    total = len(matrix.products)
    by_rule = Table(
        title=f"Compliance with policy set v{policy_set.version} ({total} products)",
        title_justify="left",
    )
    by_rule.add_column("rule", no_wrap=True)
    by_rule.add_column("title", overflow="fold")
    for heading in ("pass", "fail", "unknown", "n/a"):
        by_rule.add_column(heading, justify="right")
    for item in policy_set.rules:
        statuses = [matrix.status(product, item.id) for product in matrix.products]
        by_rule.add_row(
            item.id,
            escape(item.title),
            *(
                str(statuses.count(status))
                for status in ("pass", "fail", "unknown", "not-applicable")
            ),
        )
    console.print(by_rule)
    by_product = Table(title="By product", title_justify="left")
    by_product.add_column("product", no_wrap=True)
    by_product.add_column("failing rules", overflow="fold")
    by_product.add_column("not yet known", overflow="fold")
    for product in matrix.products:
        failing = [r for r in rule_ids if matrix.status(product, r) == "fail"]
        unknown = [r for r in rule_ids if matrix.status(product, r) == "unknown"]
        by_product.add_row(product, ", ".join(failing) or "[green]none[/]", ", ".join(unknown))
    console.print(by_product)
