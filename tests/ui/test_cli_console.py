"""``specfleet mr revert`` and ``specfleet mr automerge``: the one-command revert merge request
and the registry's automerge opt-in, through the installed console script."""

from __future__ import annotations

import git
from sqlmodel import Session, select

from specfleet.core.db import AuditEntry, Product
from specfleet.core.forges.local import LocalForge
from tests.ui.test_cli_mr import Cli, forge, publish  # noqa: F401


def test_revert_opens_a_merge_request_that_undoes_a_merge(cli: Cli, forge: LocalForge) -> None:  # noqa: F811
    """After a merge, `mr revert 1` opens merge request 2; merging it restores main."""
    publish(forge)
    assert cli("mr", "revert", "1").returncode == 1  # not merged yet: refused
    forge.approve(1, "o@x.io")
    forge.merge(1, "o@x.io")
    reverted = cli("mr", "revert", "1", "--as", "o@x.io")
    assert reverted.returncode == 0, reverted.stderr
    assert "Merge request 2 reverts merge request 1" in reverted.stdout
    shown = cli("mr", "show", "2", "--diff")
    assert "Revert !1: Upgrade pandas to 2.2.3" in shown.stdout and "-VERSION = 2" in shown.stdout
    forge.approve(2, "o@x.io")
    forge.merge(2, "o@x.io")
    repo = git.Repo(forge.project_path("orders"))
    assert repo.git.show("main:app.py") == "VERSION = 1"
    repo.close()


def test_automerge_opt_in_is_recorded_and_audited(cli: Cli, forge: LocalForge) -> None:  # noqa: F811
    """`mr automerge orders security-patch` sets the registry's opt-in; `spec` clears it."""
    done = cli("mr", "automerge", "orders", "security-patch", "--as", "o@x.io")
    assert done.returncode == 0, done.stderr
    with Session(forge.engine) as session:
        assert session.get(Product, "orders").automerge == "security-patch"
    assert cli("mr", "automerge", "orders", "spec").returncode == 0
    with Session(forge.engine) as session:
        assert session.get(Product, "orders").automerge is None
        actions = session.exec(
            select(AuditEntry.action).where(AuditEntry.subject_id == "orders")
        ).all()
    assert actions.count("product.automerge") == 2
    bad = cli("mr", "automerge", "orders", "always")
    assert bad.returncode == 2 and "always" in bad.stderr
