"""The dbt example end to end, as a new user runs it: a fresh home, offline advisories,
`product add` on a repository whose default branch is trunk, `evaluate --now`.

One merge request fixes the vulnerable pins within requirements.in's bounds; its report shows
the contract checked on both tables of the one DuckDB file and the data diff of the seeds'
marts. A broken model on the default branch ends needs-human naming it, exit 1.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import EXAMPLES, RepoFactory
from tests.support.fake_index import IndexScript, fake_index

Cli = Callable[..., CompletedProcess[str]]
pytestmark = pytest.mark.network  # dbt-core and dbt-duckdb are installed from PyPI by uv
# two dbt builds, the tests and a provoked failure per evaluation: minutes on a busy machine
EVALUATE_SECONDS = 1200


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with fake_index(IndexScript.recorded()) as url:
        yield {
            "SPECFLEET_HOME": str(tmp_path / "home"),
            "SPECFLEET_INDEX_URL": url,
            "SPECFLEET_ADVISORY_DIR": str(EXAMPLES / "advisories"),
        }


def test_dbt_project_gets_one_verified_merge_request(
    cli: Cli, make_repo: RepoFactory, env: dict[str, str], tmp_path: Path
) -> None:
    source = Path(shutil.copytree(EXAMPLES / "shop_marts", tmp_path / "shop_marts"))
    repo = make_repo(source=source, name="shop_marts", branch="trunk")
    added = cli("product", "add", "--repo", str(repo), env=env)
    assert added.returncode == 0, added.stderr
    result = cli(
        "evaluate", "shop_marts", "--now", "--window", "2026-W48", env=env, timeout=EVALUATE_SECONDS
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "proposed" in result.stdout
    with sqlite3.connect(Path(env["SPECFLEET_HOME"]) / "specfleet.db") as connection:
        rows = connection.execute(
            "SELECT description, target_branch FROM merge_request WHERE product_id='shop_marts'"
        ).fetchall()
    ((description, target),) = rows
    assert target == "trunk"
    assert "**Verification: passed.**" in description
    assert "idna" in description and "3.7" in description
    assert "requests" in description and "2.31.0" in description
    assert "daily_revenue" in description and "customer_orders" in description


def test_broken_model_on_the_default_branch_needs_its_owner(
    cli: Cli, make_repo: RepoFactory, env: dict[str, str], tmp_path: Path
) -> None:
    source = Path(shutil.copytree(EXAMPLES / "shop_marts", tmp_path / "shop_marts"))
    model = source / "models" / "marts" / "daily_revenue.sql"
    model.write_text(model.read_text().replace("sum(amount)", "sum(amount_eur)"))
    repo = make_repo(source=source, name="shop_marts", branch="trunk")
    assert cli("product", "add", "--repo", str(repo), env=env).returncode == 0
    result = cli(
        "evaluate", "shop_marts", "--now", "--window", "2026-W48", env=env, timeout=EVALUATE_SECONDS
    )
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    assert "needs-human" in out and "model daily_revenue" in out
    assert "what you can do:" in out and "Verification report" in out
