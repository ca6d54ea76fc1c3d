"""``specfleet digest``: the dry run's table, sending once a week, and owners' opt-outs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from specfleet.core.db import ensure_schema, make_engine
from tests.core.test_notify import (
    ANA,
    LEE,
    RAJ,
    add_automerge,
    add_merge_request,
    add_needs_human,
    add_product,
)
from tests.support.receivers import smtp_server

Cli = Callable[..., CompletedProcess[str]]


def test_digest_dry_run_then_send_once_then_opt_out(cli: Cli, specfleet_home: Path) -> None:
    """The dry run shows each owner's MRs and needs-human; sending happens once per week."""
    engine = make_engine(f"sqlite:///{specfleet_home / 'specfleet.db'}")
    ensure_schema(engine)
    add_product(engine, "orders", [ANA])
    add_product(engine, "payments", [RAJ])
    add_product(engine, "ledger", [LEE])
    add_merge_request(engine, "orders", "Upgrade pandas to 2.2.3", None)
    add_needs_human(engine, "payments", "no verified candidate within the rounds: tests fail")
    engine.dispose()

    dry = cli("digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 owners, would be sent by no channel configured" in dry.stdout
    assert "Upgrade pandas to 2.2.3 verified" in dry.stdout and "SEC-001" in dry.stdout
    assert "tests fail" in dry.stdout and "what to do:" in dry.stdout
    assert LEE not in dry.stdout
    only = cli("digest", "--dry-run", "--owner", RAJ)
    assert ANA not in only.stdout and RAJ in only.stdout

    with smtp_server() as mailbox:
        env = {"SPECFLEET_SMTP_HOST": mailbox.host, "SPECFLEET_SMTP_PORT": str(mailbox.port)}
        sent = cli("digest", env=env)
        assert sent.returncode == 0, sent.stderr
        assert f"{ANA} by email: sent" in sent.stdout
        again = cli("digest", env=env)
        assert "already sent this week" in again.stdout
        assert sorted(rcpt[0] for rcpt, _ in mailbox.received) == [ANA, RAJ]

    assert "opted out of" in cli("digest", "opt-out", RAJ).stdout
    assert RAJ not in cli("digest", "--dry-run").stdout
    assert "already opted in" in cli("digest", "opt-in", ANA).stdout
    bad = cli("digest", "opt-out", "not-an-address")
    assert bad.returncode == 2 and "not an e-mail address" in bad.stderr


def test_digest_dry_run_shows_automerges_and_marks_nothing(cli: Cli, specfleet_home: Path) -> None:
    """An owner whose only news is an automerge is in the dry run, with the revert command;
    the dry run tells nobody, so the automerge stays to be announced."""
    engine = make_engine(f"sqlite:///{specfleet_home / 'specfleet.db'}")
    ensure_schema(engine)
    add_product(engine, "ledger", [LEE])
    merged = add_automerge(engine, "ledger", "Upgrade pyarrow")
    engine.dispose()

    dry = cli("digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 owners, would be sent" in dry.stdout and LEE in dry.stdout
    assert "merged by automerge (revert)" in dry.stdout
    assert f"!{merged} Upgrade pyarrow" in dry.stdout and "security-patch" in dry.stdout
    assert f"specfleet mr revert {merged}" in dry.stdout
    again = cli("digest", "--dry-run")
    assert f"specfleet mr revert {merged}" in again.stdout
