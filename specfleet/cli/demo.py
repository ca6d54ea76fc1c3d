"""``specfleet demo``: the Monday-morning story, end to end, on the embedded default.

It plays what the three kinds of users do, with the same commands they would type, in one
home (``SPECFLEET_HOME``, default ``./.specfleet``): the example data products become
repositories in the local forge; the platform team registers them; the architect publishes
the organisation's policy pack; the weekly window runs (merge requests appear for the products
that need them, a no-op or no-change for the healthy one); the architect publishes the pack's
second version (one new rule) and its fan-out runs; the merge requests are listed with their
verification headline and how to review them.

No server and no LLM are needed: SQLite, the server-less Celery broker with a worker inside
the command, the local forge, the deterministic remediators. Running it again in the same home
replays the week without duplicating anything (a pack already published is not published
again; unchanged evaluations are no-ops; merge requests are updated in place, never doubled).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from sqlmodel import col, select

from specfleet.cli.common import EXIT_OK, EXIT_USAGE, console, fail, reported_errors, wiring
from specfleet.core.db import MergeRequest, PolicySetRecord, session_scope
from specfleet.core.forges.local import LocalForge
from specfleet.core.settings import get_settings
from specfleet.examples import EXAMPLES_DIR, materialise_examples
from specfleet.policies.packs import load_pack
from specfleet.services.policies import PACKS_DIR

DEMO_MARKER = ".specfleet-demo"
ARCHITECT = "ines.architect@example.com"
PLATFORM = "platform-team@example.com"


def demo(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start from an empty home (a demo home only).")
    ] = False,
) -> None:
    """Play the weekly story on the examples: register, publish, run a window, open MRs."""
    started = time.perf_counter()
    settings = get_settings()
    home = settings.home
    _prepare_home(home, fresh)
    if settings.advisory_dir is None and settings.advisory_source == "osv-directory":
        # the examples ship the real advisories for their pins (examples/advisories/README.md)
        os.environ["SPECFLEET_ADVISORY_DIR"] = str(EXAMPLES_DIR / "advisories")
        get_settings.cache_clear()
    os.environ.setdefault("SPECFLEET_ACTOR", PLATFORM)
    from specfleet.cli import app  # the same commands a user types, run in this process

    def run(*args: str) -> None:
        console.print(f"[dim]$ specfleet {' '.join(args)}[/]")
        code = app(list(args), standalone_mode=False)
        if code not in (None, EXIT_OK):
            fail(f"`specfleet {' '.join(args)}` ended with exit code {code}", EXIT_USAGE)

    with reported_errors():
        wired = wiring()
        engine = wired.engine

        _step(1, f"A home for specfleet: {home}")
        console.print(
            f"database {wired.settings.resolved_database_url}, local forge {home / 'forge'}, "
            f"advisories {wired.settings.advisory_dir}, release facts {wired.settings.index_url}"
        )

        _step(2, "The example data products become repositories in the local forge")
        forge = LocalForge(engine, home / "forge", wired.settings.git_timeout_seconds)
        repos = materialise_examples(home / "example-sources")
        table = Table("product", "forge repository", title_justify="left")
        fleet_rows = []
        for repo in repos:
            url = forge.ensure_project(repo.product_id, repo.path)
            table.add_row(repo.product_id, url)
            fleet_rows.append({"repo": url, "branch": repo.branch, "tags": ["example"]})
        console.print(table)
        fleet_file = home / "fleet.yaml"
        import yaml

        fleet_file.write_text(yaml.safe_dump({"products": fleet_rows}, sort_keys=False))

        _step(3, "The platform team registers them")
        run("product", "import", str(fleet_file))

        _step(4, "The architect publishes the organisation's policy pack")
        _publish(engine, PACKS_DIR / "v1", "Organisation policies, first version", run)

        _step(5, "Monday: the weekly window runs")
        run("run-window", "--in-process")

        _step(6, "The architect publishes the pack's second version (one new rule)")
        _publish(engine, PACKS_DIR / "v2", "ORG-PY-004: pandas 2.2 or newer", run)

        _step(7, "The policy fan-out re-evaluates the products the new rule touches")
        run("run-window", "--in-process")

        _step(8, "Merge requests waiting for their product owners")
        _merge_requests(engine)

        _step(9, "The Monday digest each owner would get (dry run: nothing is sent)")
        run("digest", "--dry-run")
    console.print(f"\n[bold]Demo finished in {time.perf_counter() - started:.0f} s.[/]")


def _prepare_home(home: Path, fresh: bool) -> None:
    marker = home / DEMO_MARKER
    if home.exists() and any(home.iterdir()) and not marker.exists():
        if fresh:
            fail(
                f"{home} holds data that is not a demo's; refusing to empty it "
                "(set SPECFLEET_HOME to another directory)",
                EXIT_USAGE,
            )
        console.print(f"[yellow]note:[/] {home} already holds specfleet data; the demo adds to it")
    elif fresh and marker.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    from specfleet.worker.verify.sandbox import sandbox_available

    if not sandbox_available():
        # allowed for the bundled examples only, and said before anything runs
        console.print(
            "[bold yellow]UNSANDBOXED:[/] bubblewrap is unavailable, so the demo builds the "
            "bundled examples without a sandbox (a fleet worker would refuse to)"
        )
    marker.write_text("created by `specfleet demo`; `specfleet demo --fresh` may empty this\n")


def _step(number: int, title: str) -> None:
    console.print()
    console.print(Rule(f"[bold]{number}. {escape(title)}[/]", align="left"))


def _publish(engine: object, pack: Path, message: str, run: object) -> None:
    loaded = load_pack(pack)
    with session_scope(engine) as session:  # type: ignore[arg-type]
        known = session.exec(
            select(PolicySetRecord.version).where(
                PolicySetRecord.content_hash == loaded.content_hash()
            )
        ).first()
    if known is not None:
        console.print(f"{pack.name} is already published as policy set v{known}: nothing to do.")
        return
    os.environ["SPECFLEET_ACTOR"] = ARCHITECT
    try:
        run("policy", "publish", str(pack), "--message", message)  # type: ignore[operator]
    finally:
        os.environ["SPECFLEET_ACTOR"] = PLATFORM


def _merge_requests(engine: object) -> None:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        rows = list(
            session.exec(
                select(MergeRequest)
                .where(MergeRequest.forge == "local")
                .order_by(col(MergeRequest.product_id), col(MergeRequest.id))
            ).all()
        )
    if not rows:
        console.print("No merge request was opened.")
        return
    table = Table(title_justify="left")
    for name in ("id", "product", "state", "title", "verification"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.id),
            escape(row.product_id),
            row.state,
            escape(row.title),
            escape(_headline(row.description)),
        )
    console.print(table)
    open_ids = [row.id for row in rows if row.state == "open"]
    if open_ids:
        first = open_ids[0]
        console.print(
            f"Review one: [bold]specfleet mr show {first}[/] (--diff shows the change); approve "
            f"and merge: [bold]specfleet mr approve {first}[/], [bold]specfleet mr merge "
            f"{first}[/]; in the browser: [bold]specfleet web[/], then "
            f"http://127.0.0.1:8000/merge-requests/{first}"
        )


def _headline(description: str) -> str:
    """The verification verdict line of a merge request's description."""
    for line in description.splitlines():
        if line.startswith("**Verification:"):
            return line.replace("**", "")[:220]
    return "(no verification section)"
