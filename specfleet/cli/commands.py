"""The table of ``specfleet`` commands: name, where it lives, and its one-line summary.

The root help is drawn from this table alone, and a command line imports only the module of the
command it names, so ``specfleet --help`` or ``specfleet health`` does not pay for the database
layer, Celery and the web console. A test checks every summary against the command's docstring,
so the table cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One top-level command: a Typer group (``attribute`` is a Typer app) or a function."""

    name: str
    module: str
    attribute: str
    summary: str
    group: bool = False


COMMANDS: tuple[Command, ...] = (
    Command(
        "demo",
        "demo",
        "demo",
        "Play the weekly story on the examples: register, publish, run a window, open MRs.",
    ),
    Command("spec", "spec", "app", "Validate and read dataproduct.yaml specs.", group=True),
    Command("product", "product", "app", "Register and inspect data products.", group=True),
    Command(
        "health",
        "health",
        "health",
        "Each pin with its latest version, age, yanked state and advisories.",
    ),
    Command(
        "remediate",
        "health",
        "remediate",
        "Propose (and with --write apply) the upgrades advisories and policy floors ask for.",
    ),
    Command(
        "verify",
        "verify",
        "verify",
        "Build, test and compare baseline and candidate; exit 0 publishable, 1 not.",
    ),
    Command(
        "evaluate",
        "evaluate",
        "evaluate",
        "Evaluate one product: queue it for the workers, or with --now run it here.",
    ),
    Command(
        "amend",
        "amend",
        "amend",
        "Ask for a change to a product's spec; specfleet amends it and re-implements it.",
    ),
    Command("amendments", "amend", "amend_list", "A product's amendment requests, newest first."),
    Command(
        "digest",
        "digest",
        "app",
        "The owners' weekly digest: what would be sent (--dry-run), sending it, opt-outs.",
        group=True,
    ),
    Command(
        "policy",
        "policy",
        "app",
        "Organisation policies: publish, diff, check, compliance.",
        group=True,
    ),
    Command("mr", "mr", "app", "Review, approve and merge merge requests.", group=True),
    Command("fleet", "fleet_control", "app", "Pause, resume and inspect the fleet.", group=True),
    Command(
        "run-window",
        "fleet",
        "run_window",
        "Queue a window's due evaluations, wait for them with a progress bar, show the results.",
    ),
    Command(
        "worker",
        "fleet",
        "worker",
        "Run a worker: take evaluations from the queue and run them (Ctrl-C stops it).",
    ),
    Command(
        "scheduler",
        "fleet",
        "scheduler",
        "Run the scheduler (Celery beat): the weekly window, MR tracking, lost-message sweeps.",
    ),
    Command(
        "web",
        "web",
        "web",
        "Serve the web console and the JSON API (/api/v1, OpenAPI at /api/v1/openapi.json).",
    ),
    Command("user", "web", "app", "Console accounts and API tokens.", group=True),
    Command(
        "advisories",
        "advisories",
        "app",
        "Vulnerability advisories: check pins against an OSV directory, serve it to pip-audit.",
        group=True,
    ),
    Command("agent", "agent", "app", "The LLM planner: audit its guard rails.", group=True),
    Command("examples", "examples", "app", "The bundled example data products.", group=True),
    Command("db", "db", "app", "Database schema.", group=True),
)

HELP = "Keep data products evergreen: specs, policies, verified weekly merge requests."


def find(name: str) -> Command | None:
    """The command called ``name``, or None (the full app then says what is wrong)."""
    return next((command for command in COMMANDS if command.name == name), None)
