"""The ``specfleet`` command line (Typer + Rich); every command's exit codes are in common.py."""

from __future__ import annotations

import typer

from ui.cli import advisories, db, examples, health, policy, product, spec, verify

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
app.command("health")(health.health)
app.command("remediate")(health.remediate)
app.command("verify")(verify.verify)


def main() -> None:
    app()
