"""`specfleet health` and `remediate --write` on the lock files people use, without a spec:
uv.lock, poetry.lock, Pipfile.lock and a PEP 621 pyproject.toml (tests/fixtures/locks, real
files made by uv, Poetry and Pipenv), offline: a recorded index and the advisory fixtures."""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support.fake_index import IndexScript, fake_index

Cli = Callable[..., CompletedProcess[str]]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LOCKS = FIXTURES / "locks"

# fixture folder -> (the file holding the pins, python target, files remediate may change)
CASES = {
    "uv": ("uv.lock", "3.8", {"pyproject.toml", "uv.lock"}),
    "poetry": ("poetry.lock", "3.8", {"poetry.lock"}),
    "pipenv": ("Pipfile.lock", "3.11", {"Pipfile", "Pipfile.lock"}),
    "pyproject": ("pyproject.toml", "3.9", {"pyproject.toml"}),
}


# what a changed line may hold: the old and new versions, and the old release's file hashes
MAY_CHANGE = ("14.0.1", "2.31.0", "14.0.0", "2.28.2", "sha256:", "]", "files", "hashes", "wheels")


@pytest.fixture
def index_env() -> Iterator[dict[str, str]]:
    with fake_index(IndexScript.recorded()) as url:
        yield {"SPECFLEET_INDEX_URL": url, "SPECFLEET_ADVISORY_DIR": str(FIXTURES / "advisories")}


def checkout(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(LOCKS / name, tmp_path / name))


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_health_then_remediate_write_fixes_the_vulnerable_pins(
    cli: Cli, tmp_path: Path, index_env: dict[str, str], name: str
) -> None:
    """Each format: health names pyarrow's and requests' advisories at their lock lines (no
    spec needed); remediate --write moves exactly those two pins in the file's own format,
    for the files' Python target; health is clean afterwards."""
    lock, python, may_change = CASES[name]
    repo = checkout(tmp_path, name)
    result = cli("health", str(repo), "--json", env=index_env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["product"] == name and report["runtime"]["runtime"] == f"python{python}"
    found = {pin["package"]: pin for pin in report["pins"] if pin["advisories"]}
    assert sorted(found) == ["pyarrow", "requests"]
    assert found["pyarrow"]["fixed_in"] == "14.0.1" and found["requests"]["fixed_in"] == "2.31.0"
    assert {pin["file"] for pin in found.values()} == {lock}
    line = found["requests"]["line"]
    assert "requests" in (repo / lock).read_text().splitlines()[line - 1]

    before = {path.name: path.read_text() for path in repo.iterdir()}
    fixed = cli("remediate", str(repo), "--write", "--in-place", env=index_env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "PYSEC-2023-238" in fixed.stdout and "PYSEC-2023-74" in fixed.stdout
    assert f"Python target {python}" in fixed.stdout
    after = {path.name: path.read_text() for path in repo.iterdir()}
    changed = {file for file in before if before[file] != after[file]}
    assert changed and changed <= may_change
    for file in changed:
        for diff_line in changed_lines(before[file], after[file]):
            # versions move; only the moved packages' file hashes may go with them
            assert any(mark in diff_line for mark in MAY_CHANGE), (file, diff_line)

    again = cli("health", str(repo), "--json", env=index_env)
    assert again.returncode == 0, again.stdout
    pins = {pin["package"]: pin["pinned"] for pin in json.loads(again.stdout)["pins"]}
    assert pins["pyarrow"] == "14.0.1" and pins["requests"] == "2.31.0"


def test_health_on_one_lock_file_and_piped_output_keeps_every_column(
    cli: Cli, tmp_path: Path, index_env: dict[str, str]
) -> None:
    """`health path/to/poetry.lock` piped: vulnerable first, then outdated, no column lost,
    versions whole; --all adds the pins that are neither."""
    repo = checkout(tmp_path, "poetry")
    result = cli("health", str(repo / "poetry.lock"), env={**index_env, "COLUMNS": "80"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("package"))
    for column in ("pinned", "latest", "advisories", "fixed in", "where", "notes"):
        assert column in header
    rows = lines[lines.index(header) + 1 :]
    assert [row.split()[0] for row in rows[:2]] == ["pyarrow", "requests"]
    assert "poetry.lock:311" in rows[0] and "PYSEC-2023-238" in rows[0]
    assert "2.34.2" in rows[1]  # the latest requests, uncut
    # idna 3.15 is outdated against the recorded release facts (3.20), so it is listed after
    # the vulnerable pins; certifi is neither vulnerable nor outdated: left to --all
    assert all(row.split()[0] != "certifi" for row in rows)
    assert "other pins not shown (--all" in result.stdout
    every = cli("health", str(repo), "--all", env=index_env)
    assert "certifi" in every.stdout and "idna" in every.stdout


def test_an_unparseable_lock_is_reported_by_line_and_never_rewritten(
    cli: Cli, tmp_path: Path, index_env: dict[str, str]
) -> None:
    """A uv.lock broken on line 14 is named with its line; remediate --write leaves it alone."""
    repo = checkout(tmp_path, "uv")
    lock = repo / "uv.lock"
    lines = lock.read_text().splitlines(keepends=True)
    lines[13] = 'version = "2026.10.19.post1\n'  # an unterminated string
    lock.write_text("".join(lines))
    before = {path.name: path.read_bytes() for path in repo.iterdir()}
    result = cli("health", str(repo), "--json", env=index_env)
    problems = json.loads(result.stdout)["problems"]
    assert [(p["file"], p["line"]) for p in problems] == [("uv.lock", 14)], problems
    assert "not valid TOML" in problems[0]["reason"]
    fixed = cli("remediate", str(repo), "--write", "--in-place", env=index_env)
    assert fixed.returncode == 1
    assert "uv.lock:14: not valid TOML" in fixed.stdout and "never rewritten" in fixed.stdout
    assert {path.name: path.read_bytes() for path in repo.iterdir()} == before


def test_a_checkout_without_any_dependency_file_says_what_was_looked_for(
    cli: Cli, tmp_path: Path, index_env: dict[str, str]
) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("health", str(tmp_path / "empty"), env=index_env)
    assert result.returncode == 2
    assert "no dependency file found" in result.stderr and "uv.lock" in result.stderr
