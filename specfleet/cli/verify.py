"""``specfleet verify``: run the verification gate on two refs of a product repository."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown

from specfleet.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    Wiring,
    console,
    err_console,
    reported_errors,
    wiring,
)
from specfleet.core.errors import ConfigurationError, InputError
from specfleet.core.git import export_tree
from specfleet.core.health.report import HealthReport, check_health
from specfleet.core.spec import Spec, load_spec
from specfleet.policies.check import check_product, run_semgrep_rules
from specfleet.policies.findings import Finding
from specfleet.policies.store import PolicySet, load_policy_set


def verify(
    repo: Annotated[Path, typer.Argument(help="The product's git repository.")],
    baseline: Annotated[str, typer.Option(help="Ref of the current implementation.")] = "main",
    candidate: Annotated[str, typer.Option(help="Ref of the proposed implementation.")] = "HEAD",
    spec: Annotated[
        str, typer.Option(help="Spec path inside the repository.")
    ] = "dataproduct.yaml",
    policies: Annotated[
        bool, typer.Option(help="Re-scan both sides against the latest policy set.")
    ] = True,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the merge-request Markdown as is.")
    ] = False,
) -> None:
    """Build, test and compare baseline and candidate; exit 0 publishable, 1 not."""
    # imported here: DuckDB and the sandbox are only needed by this command
    from specfleet.worker.report import render_verdict
    from specfleet.worker.verify.environments import EnvironmentCache
    from specfleet.worker.verify.gate import verify as run_gate
    from specfleet.worker.verify.results import SideResultCache

    with reported_errors(), tempfile.TemporaryDirectory(prefix="specfleet-refs-") as scratch:
        wired = wiring()
        root = Path(scratch)
        baseline_commit = export_tree(repo, baseline, root / "baseline")
        candidate_commit = export_tree(repo, candidate, root / "candidate")
        candidate_spec = load_spec(root / "candidate" / spec)
        baseline_spec = load_spec(root / "baseline" / spec)
        before: list[Finding] = []
        after: list[Finding] = []
        policy_set = _latest_policies(wired) if policies else None
        if policy_set is not None:
            before = _findings(wired, policy_set, root / "baseline", baseline_spec, spec)
            after = _findings(wired, policy_set, root / "candidate", candidate_spec, spec)
        verdict = run_gate(
            candidate_spec,
            root / "baseline",
            root / "candidate",
            EnvironmentCache(wired.settings.cache_dir / "environments"),
            baseline_commit=baseline_commit,
            candidate_commit=candidate_commit,
            baseline_spec=baseline_spec,
            findings_before=before,
            findings_after=after,
            results=SideResultCache(wired.settings.cache_dir / "verifications"),
        )
    report = render_verdict(verdict)
    if markdown:
        typer.echo(report)
    else:
        console.print(Markdown(report))
    raise typer.Exit(EXIT_OK if verdict.publishable else EXIT_INVALID)


def _latest_policies(wired: Wiring) -> PolicySet | None:
    try:
        return load_policy_set(wired.engine)
    except InputError:
        return None  # nothing published yet: the re-scan section stays empty


def _findings(
    wired: Wiring, policy_set: PolicySet, checkout: Path, product_spec: Spec, spec_file: str
) -> list[Finding]:
    health: HealthReport | None = None
    try:
        health = check_health(
            checkout, product_spec, wired.index_client(), wired.advisory_source(), dt.date.today()
        )
    except (ConfigurationError, InputError) as error:
        err_console.print(f"[yellow]dependency rules not re-scanned:[/] {error}")
    result = check_product(
        checkout,
        product_spec,
        spec_file,
        policy_set.rules,
        policy_set.semgrep_files,
        health,
        run_semgrep_rules,
        policy_set.version,
    )
    return list(result.findings)
