"""``specfleet product add --forge github --repo OWNER/NAME`` against the fake GitHub."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from tests.conftest import RepoFactory
from tests.support.fake_github import fake_github

Cli = Callable[..., CompletedProcess[str]]
VALID = (Path(__file__).resolve().parent.parent / "fixtures" / "specs" / "valid.yaml").read_text()
TOKEN = "ghp_Zx9fakeTokenForTests0123456789abcdefgh"


def test_product_add_on_github_by_owner_and_name(
    cli: Cli, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """OWNER/NAME becomes the clone URL of the configured GitHub and the forge project."""
    source = make_repo({"dataproduct.yaml": VALID}, name="invoices")
    with fake_github(tmp_path / "github", TOKEN) as server:
        server.add_repository("finance/invoices", source)
        env = {"SPECFLEET_GITHUB_URL": server.api_url}
        added = cli("product", "add", "--forge", "github", "--repo", "finance/invoices", env=env)
        assert added.returncode == 0, added.stderr
        assert "registered product invoices" in added.stdout
        listed = json.loads(cli("product", "list", "--json", env=env).stdout)
    assert listed[0]["repo"] == f"{server.base_url}/finance/invoices.git"
    assert (listed[0]["forge"], listed[0]["project"]) == ("github", "finance/invoices")
    bad = cli("product", "add", "--forge", "github", "--repo", "finance/..")
    assert bad.returncode == 2 and "OWNER/NAME" in bad.stderr
