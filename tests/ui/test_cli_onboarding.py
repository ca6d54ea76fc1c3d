"""Onboarding a dbt repository without a spec: `product add --onboard` registers it from the
drafted spec and opens one onboarding merge request carrying the draft; evaluations wait for
it; once merged the branch's spec is the registered one."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from specfleet.core.spec import check_spec_bytes
from tests.support.fake_index import IndexScript, fake_index
from tests.ui.test_cli_spec_init import dbt_project_without_spec

Cli = Callable[..., CompletedProcess[str]]
ADVISORIES = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_onboard_opens_one_merge_request_carrying_a_valid_draft(
    cli: Cli, specfleet_home: Path, tmp_path: Path
) -> None:
    source = dbt_project_without_spec(tmp_path)
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(source)], check=True)
    subprocess.run(["git", "-C", str(source), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(source),
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@example.com",
            "commit",
            "-qm",
            "dbt project",
        ],
        check=True,
    )
    # the product's repository is a project of the embedded forge, as in the demo
    project = specfleet_home / "forge" / "shop_marts.git"
    project.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(project)], check=True)
    trunk_before = git(project, "rev-parse", "trunk").strip()

    plain = cli("product", "add", "--repo", str(project))
    assert plain.returncode == 1 and "--onboard" in plain.stderr  # offered, nothing opened
    assert "shop_marts" not in cli("product", "list").stdout

    onboarded = cli(
        "product", "add", "--repo", str(project), "--owner", "ana@example.com", "--onboard"
    )
    assert onboarded.returncode == 0, onboarded.stderr
    assert "merge request opened" in onboarded.stdout
    assert "lines are marked '# OWNER:'" in onboarded.stdout
    assert git(project, "rev-parse", "trunk").strip() == trunk_before  # the branch is untouched

    drafted = git(project, "show", "specfleet/onboarding:dataproduct.yaml")
    check = check_spec_bytes(drafted.encode(), "dataproduct.yaml")
    assert check.spec is not None and check.spec.id == "shop_marts"
    changed = git(project, "diff", "--name-only", "trunk", "specfleet/onboarding").split()
    assert changed == ["dataproduct.yaml"]  # the draft and nothing else

    listed = cli("mr", "list")
    assert listed.stdout.count("Onboard shop_marts") == 1, listed.stdout
    assert "onboarding" in listed.stdout and "verified green" not in listed.stdout
    shown = cli("mr", "show", "1")
    assert "Before you merge" in shown.stdout and "# OWNER:" in shown.stdout
    assert "no-change" in shown.stdout  # says what happens until it is merged

    again = cli("product", "add", "--repo", str(project), "--onboard")
    assert again.returncode == 0 and "already open" in again.stdout
    assert cli("mr", "list").stdout.count("Onboard shop_marts") == 1

    with fake_index(IndexScript.recorded()) as url:
        env = {"SPECFLEET_INDEX_URL": url, "SPECFLEET_ADVISORY_DIR": str(ADVISORIES)}
        waiting = cli("evaluate", "shop_marts", "--now", env=env)
    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert "no-change" in waiting.stdout and "onboarding merge" in waiting.stdout

    assert cli("mr", "approve", "1").returncode == 0
    merged = cli("mr", "merge", "1")
    assert merged.returncode == 0, merged.stderr
    assert git(project, "show", "trunk:dataproduct.yaml") == drafted
    # the merged spec is the one registered: registering again changes nothing
    settled = cli("product", "add", "--repo", str(project))
    assert settled.returncode == 0 and "nothing changed" in settled.stdout, settled.stdout


def test_onboard_on_a_repository_that_is_not_a_dbt_project_says_what_to_do(
    cli: Cli, make_repo: Callable[..., Path]
) -> None:
    repo = make_repo(files={"README.md": "hello\n"}, name="plain")
    result = cli("product", "add", "--repo", str(repo), "--onboard")
    assert result.returncode == 1
    assert "not a dbt project" in result.stderr and "spec init" in result.stderr
    assert cli("mr", "list").stdout.count("Onboard") == 0
