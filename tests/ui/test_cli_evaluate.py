"""`specfleet evaluate PRODUCT --now` as a user runs it: stages as a table, the outcome, and
the documented exit codes (0 finished, 1 failed, 2 usage)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import commit_files
from tests.support.fake_index import IndexScript, fake_index

Cli = Callable[..., CompletedProcess[str]]
ADVISORIES = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    with fake_index(IndexScript.recorded()) as url:
        yield {"SPECFLEET_INDEX_URL": url, "SPECFLEET_ADVISORY_DIR": str(ADVISORIES)}


@pytest.fixture
def registered(cli: Cli, tmp_path: Path, env: dict[str, str]) -> Path:
    """The examples as git repositories, registered."""
    repos = tmp_path / "repos"
    assert cli("examples", "init", str(repos), env=env).returncode == 0
    imported = cli("product", "import", str(repos / "fleet.yaml"), env=env)
    assert imported.returncode == 0, imported.stderr
    return repos


def test_evaluate_now_prints_the_stages_and_the_outcome(
    cli: Cli, registered: Path, env: dict[str, str]
) -> None:
    """A healthy product: exit 0, a stage table, no-change and why; again: a no-op."""
    first = cli("evaluate", "store_footfall", "--now", "--window", "2026-W48", env=env)
    assert first.returncode == 0, first.stderr
    for stage in ("fetch", "fingerprint", "load-spec", "assess", "plan"):
        assert stage in first.stdout
    assert "no-change" in first.stdout and "why: all pins healthy" in first.stdout

    second = cli("evaluate", "store_footfall", "--now", "--window", "2026-W48", env=env)
    assert second.returncode == 0, second.stderr
    assert "no-op" in second.stdout and "load-spec" not in second.stdout


def test_evaluate_exit_codes(cli: Cli, registered: Path, env: dict[str, str]) -> None:
    """Invalid spec: 1 with the file and line; unknown product: 1; bad trigger or window: 2."""
    spec = registered / "store_footfall" / "dataproduct.yaml"
    commit_files(
        spec.parent, {spec.name: spec.read_text().replace("spec_version: 1", "spec_version: 9")}
    )
    broken = cli("evaluate", "store_footfall", "--now", env=env)
    assert broken.returncode == 1
    assert "failed" in broken.stdout and "dataproduct.yaml:1" in broken.stderr

    assert cli("evaluate", "nosuch", "--now", env=env).returncode == 1
    bad_trigger = cli("evaluate", "orders", "--now", "--trigger", "hourly", env=env)
    assert bad_trigger.returncode == 2 and "--trigger" in bad_trigger.stderr
    bad_window = cli("evaluate", "orders", "--now", "--window", "2026-48", env=env)
    assert bad_window.returncode == 2 and "ISO week" in bad_window.stderr
