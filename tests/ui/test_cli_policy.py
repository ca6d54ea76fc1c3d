"""`specfleet policy` through its entry point: publish, list, show, diff, check, compliance."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from specfleet.core.windows import iso_week
from tests.conftest import EXAMPLES, RepoFactory
from tests.support.fake_index import IndexScript, fake_index

Cli = Callable[..., CompletedProcess[str]]
PACK = Path(__file__).resolve().parents[2] / "policies" / "pack"
ADVISORIES = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    with fake_index(IndexScript.recorded()) as url:
        yield {"SPECFLEET_INDEX_URL": url, "SPECFLEET_ADVISORY_DIR": str(ADVISORIES)}


def test_publish_twice_then_v2_shows_the_added_rule_and_affected_products(
    cli: Cli, make_repo: RepoFactory, env: dict[str, str]
) -> None:
    """v1 publishes, v1 again is a no-op, v2 shows exactly ORG-PY-004 and the products it hits."""
    for name in ("orders", "store_footfall"):
        repo = make_repo(source=EXAMPLES / name, name=name)
        assert cli("product", "add", "--repo", str(repo), env=env).returncode == 0
    first = cli("policy", "publish", str(PACK / "v1"), "-m", "initial", env=env)
    assert first.returncode == 0, first.stderr
    assert "published policy set v1" in first.stdout
    again = cli("policy", "publish", str(PACK / "v1"), "-m", "again", env=env)
    assert "Nothing published: this content is already policy set v1" in again.stdout
    second = cli("policy", "publish", str(PACK / "v2"), "-m", "pandas floor", env=env)
    assert "published policy set v2" in second.stdout
    assert "ORG-PY-004" in second.stdout and "orders" in second.stdout
    assert "store_footfall" not in second.stdout.split("Products to re-evaluate")[1]

    diff = cli("policy", "diff", "1", "2", env=env)
    assert diff.returncode == 0
    assert "added" in diff.stdout and "ORG-PY-004" in diff.stdout
    assert "changed" not in diff.stdout and "removed" not in diff.stdout
    listed = cli("policy", "list", env=env)
    assert "v2" in listed.stdout and "pandas floor" in listed.stdout
    shown = cli("policy", "show", "2", env=env)
    assert "pandas 2.2 or newer" in shown.stdout and "tag:pandas" in shown.stdout


def test_publish_refuses_an_invalid_pack_with_locations(cli: Cli, tmp_path: Path) -> None:
    """A pack with a bad rule is refused (exit 1) with file and line; nothing is published."""
    pack = Path(shutil.copytree(PACK / "v1", tmp_path / "pack"))
    rule = pack / "rules" / "ORG-SPEC-002.yaml"
    rule.write_text(rule.read_text().replace("kind: spec", "kind: specification"))
    result = cli("policy", "publish", str(pack), "-m", "broken")
    assert result.returncode == 1
    assert f"{rule}:3:" in result.stderr and "'specification'" in result.stderr
    assert "no policy set" in cli("policy", "show").stderr


def test_check_reports_each_examples_violations(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    """policy check finds what the examples were built to violate, with file and line."""
    assert cli("policy", "publish", str(PACK / "v2"), "-m", "v2", env=env).returncode == 0
    expected = {
        "orders": {
            ("ORG-SEC-001", "requirements.txt", 9),
            ("ORG-PY-010", "pipeline/build.py", 49),
            ("ORG-PY-004", "requirements.txt", 5),
        },
        "customer_revenue": {
            ("ORG-SEC-001", "requirements.txt", 5),
            ("ORG-SQL-001", "models/stg_customers.sql", None),
        },
        "store_footfall": set(),
        # dbt: vulnerable pins in the pip-compiled lock; select * from {{ ref() }} is fine
        "shop_marts": {("ORG-SEC-001", "requirements.txt", None)},
    }
    for name, violations in expected.items():
        repo = shutil.copytree(EXAMPLES / name, tmp_path / name)
        result = cli("policy", "check", str(repo), "--json", env=env)
        report = json.loads(result.stdout)
        failing = {
            (f["rule"], f["file"], f["line"]) for f in report["findings"] if f["status"] == "fail"
        }
        for rule, file, line in violations:
            assert any(
                f_rule == rule and f_file == file and (line is None or f_line == line)
                for f_rule, f_file, f_line in failing
            ), (name, rule, failing)
        if name == "shop_marts":
            assert not any(rule == "ORG-SQL-001" for rule, _, _ in failing), failing
        if name == "store_footfall":
            assert result.returncode == 0, failing
            assert report["statuses"]["ORG-SEC-001"] == "pass"
        else:
            assert result.returncode == 1


def test_check_an_unpublished_pack_and_compliance_history(
    cli: Cli, make_repo: RepoFactory, env: dict[str, str]
) -> None:
    """An architect tries a pack before publishing; registered checks feed the compliance view."""
    repo = make_repo(source=EXAMPLES / "store_footfall", name="store_footfall")
    assert cli("product", "add", "--repo", str(repo), env=env).returncode == 0
    trial = cli("policy", "check", str(repo), "--pack", str(PACK / "v1"), env=env)
    assert trial.returncode == 0, trial.stdout + trial.stderr
    assert "against the pack" in trial.stdout
    assert cli("policy", "publish", str(PACK / "v1"), "-m", "v1", env=env).returncode == 0
    before = cli("policy", "compliance", env=env)
    assert "store_footfall" in before.stdout
    checked = cli("policy", "check", str(repo), env=env)
    assert "recorded in the compliance history" in checked.stdout
    after = cli("policy", "compliance", env=env)
    row = next(line for line in after.stdout.splitlines() if line.startswith("│ store_footfall"))
    assert "none" in row  # no failing rule
    rollout = cli("policy", "compliance", "--rule", "ORG-SEC-001", env=env)
    assert rollout.returncode == 0 and "Rollout of ORG-SEC-001" in rollout.stdout
    week = iso_week(dt.date.today())
    cells = next(line for line in rollout.stdout.splitlines() if week in line).split("│")
    assert [cell.strip() for cell in cells[1:6]] == [week, "1", "0", "0", "1"]


def test_check_works_on_a_checkout_or_lock_file_without_a_spec(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    """Like pip-audit or semgrep, policy check judges any checkout: the code and pin rules run,
    spec rules say they need a spec, and nothing is recorded for an unregistered directory."""
    assert cli("policy", "publish", str(PACK / "v2"), "-m", "v2", env=env).returncode == 0
    repo = Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "orders_nospec"))
    (repo / "dataproduct.yaml").unlink()

    result = cli("policy", "check", str(repo), "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["product"] == "orders_nospec"
    failing = {
        (f["rule"], f["file"], f["line"]) for f in report["findings"] if f["status"] == "fail"
    }
    assert ("ORG-SEC-001", "requirements.txt", 9) in failing
    assert ("ORG-PY-010", "pipeline/build.py", 49) in failing
    assert report["statuses"]["ORG-SPEC-001"] == "unknown"
    assert any(
        f["rule"] == "ORG-SPEC-001" and "spec init" in f["message"] for f in report["findings"]
    )

    table = cli("policy", "check", str(repo), env=env)
    assert "no spec: checked as orders_nospec" in table.stdout
    assert "recorded in the compliance history" not in table.stdout

    lock = cli("policy", "check", str(repo / "requirements.txt"), "--json", env=env)
    assert lock.returncode == 1, lock.stderr
    statuses = json.loads(lock.stdout)["statuses"]
    assert statuses["ORG-SEC-001"] == "fail"
    assert statuses["ORG-PY-010"] == "not-applicable"  # a lone lock file has no code to scan

    (repo / "requirements.txt").unlink()
    code_only = cli("policy", "check", str(repo), env=env)
    assert code_only.returncode == 1  # ORG-PY-010 still fails on the code
    assert "dependency rules not checked" in code_only.stderr
    assert "no dependency file found" in code_only.stderr
