"""The ``specfleet`` command line (Typer + Rich); every command's exit codes are in common.py."""

from __future__ import annotations

import typer

from ui.cli import (
    advisories,
    agent,
    amend,
    db,
    demo,
    digest,
    evaluate,
    examples,
    fleet,
    fleet_control,
    health,
    mr,
    policy,
    product,
    spec,
    verify,
    web,
)

app = typer.Typer(
    name="specfleet",
    help="Keep data products evergreen: specs, policies, verified weekly merge requests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(spec.app, name="spec")
app.add_typer(product.app, name="product")
app.add_typer(db.app, name="db")
app.add_typer(examples.app, name="examples")
app.add_typer(advisories.app, name="advisories")
app.add_typer(policy.app, name="policy")
app.add_typer(mr.app, name="mr")
app.add_typer(agent.app, name="agent")
app.add_typer(web.app, name="user")
app.add_typer(fleet_control.app, name="fleet")
app.add_typer(digest.app, name="digest")
app.command("health")(health.health)
app.command("remediate")(health.remediate)
app.command("verify")(verify.verify)
app.command("evaluate")(evaluate.evaluate)
app.command("amend")(amend.amend)
app.command("amendments")(amend.amend_list)
app.command("worker")(fleet.worker)
app.command("scheduler")(fleet.scheduler)
app.command("run-window")(fleet.run_window)
app.command("web")(web.web)
app.command("demo")(demo.demo)


def main() -> None:
    app()
