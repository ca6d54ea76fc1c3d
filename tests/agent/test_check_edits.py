"""``specfleet agent check-edits``: the guard rails audited on a corpus of hostile and benign plans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from specfleet.cli import app
from specfleet.core.settings import get_settings
from tests.agent.edits_repo import CANARY_FORGE_TOKEN, CORPUS, build_edits_repo

EXPECTED: dict[str, str] = json.loads((CORPUS / "hostile" / "expected.json").read_text())
HOSTILE = sorted(CORPUS.glob("hostile/*.json"))
HOSTILE = [path for path in HOSTILE if path.name != "expected.json"]
BENIGN = sorted(CORPUS.glob("benign/*.json"))
PROTECT = ["--protect", "fixtures/*"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_edits_repo(tmp_path_factory.mktemp("edits"))


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, repo: Path) -> Callable[[Path], tuple[int, dict]]:
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", CANARY_FORGE_TOKEN)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(plan: Path) -> tuple[int, dict]:
        result = runner.invoke(
            app, ["agent", "check-edits", str(plan), "--repo", str(repo), "--json", *PROTECT]
        )
        return result.exit_code, json.loads(result.stdout)

    return run


def test_the_corpus_is_large_enough_and_fully_described() -> None:
    """At least 40 hostile plans ship, each with the reason it must be refused for."""
    assert len(HOSTILE) >= 40
    assert {path.stem for path in HOSTILE} == set(EXPECTED)
    assert len(BENIGN) >= 5


@pytest.mark.parametrize("plan", HOSTILE, ids=lambda path: path.stem)
def test_every_hostile_plan_is_refused_for_its_reason(
    plan: Path, check: Callable[[Path], tuple[int, dict]]
) -> None:
    """A hostile plan exits 1 and the refusal names why (traversal, CI, secret, spec ...)."""
    code, report = check(plan)
    assert code == 1, report
    assert not report["accepted"]
    reasons = [edit["reason"] for edit in report["edits"] if not edit["accepted"]]
    assert any(EXPECTED[plan.stem] in reason for reason in reasons), reasons


@pytest.mark.parametrize("plan", BENIGN, ids=lambda path: path.stem)
def test_every_benign_plan_is_accepted(
    plan: Path, check: Callable[[Path], tuple[int, dict]]
) -> None:
    """A benign plan (code edit, new module, pin bump, one amendment) exits 0, all accepted."""
    code, report = check(plan)
    assert code == 0, report
    assert all(edit["accepted"] for edit in report["edits"])


def test_checking_never_writes_to_the_repository(
    repo: Path, check: Callable[[Path], tuple[int, dict]], tmp_path: Path
) -> None:
    """Auditing a plan, accepted or not, leaves every file of the repository as it was."""
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    for plan in [*HOSTILE[:5], *BENIGN]:
        check(plan)
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert before == after
    assert not any((tmp_path.parent).glob("**/outside/payload.py"))


def test_the_installed_command_prints_a_table_and_exit_codes(
    cli: Callable[..., object], repo: Path, tmp_path: Path
) -> None:
    """The real `specfleet` script: a table per edit, exit 1 on refusal, 0 when all pass."""
    hostile = cli(
        "agent", "check-edits", str(CORPUS / "hostile" / "ci-gitlab.json"), "--repo", str(repo)
    )
    assert hostile.returncode == 1, hostile.stderr
    assert (
        ".gitlab-ci.yml" in hostile.stdout and "CI configuration is never edited" in hostile.stdout
    )
    benign = cli(
        "agent",
        "check-edits",
        str(CORPUS / "benign" / "comment-and-amendment.json"),
        "--repo",
        str(repo),
    )
    assert benign.returncode == 0, benign.stdout + benign.stderr
    assert "accepted" in benign.stdout and "every edit accepted" in benign.stdout


def test_a_file_that_is_not_a_plan_is_refused_with_its_line(
    cli: Callable[..., object], repo: Path, tmp_path: Path
) -> None:
    """Malformed JSON exits 1 naming the line; a missing file exits 2."""
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "edits": [\n    {"kind": "write",, }\n  ]\n}\n')
    result = cli("agent", "check-edits", str(broken), "--repo", str(repo))
    assert result.returncode == 1
    assert "line 3" in result.stderr
    missing = cli("agent", "check-edits", str(tmp_path / "nope.json"), "--repo", str(repo))
    assert missing.returncode == 2 and "no such file" in missing.stderr
