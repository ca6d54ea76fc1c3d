"""`specfleet health` and `specfleet remediate` on the examples, offline: a recorded index and
the advisory fixtures (directly, and through pip-audit talking to `advisories serve`)."""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from specfleet.core.health.advisories import OsvDirectory, start_server
from tests.conftest import EXAMPLES
from tests.support.fake_index import IndexScript, fake_index

Cli = Callable[..., CompletedProcess[str]]
ADVISORIES = Path(__file__).resolve().parent.parent / "fixtures" / "advisories"


@pytest.fixture
def index_env() -> Iterator[dict[str, str]]:
    with fake_index(IndexScript.recorded()) as url:
        yield {"SPECFLEET_INDEX_URL": url, "SPECFLEET_ADVISORY_DIR": str(ADVISORIES)}


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "orders"))


def test_health_lists_vulnerable_pins_with_advisories_and_fixes(
    cli: Cli, orders: Path, index_env: dict[str, str]
) -> None:
    """orders: pyarrow and requests are vulnerable, each with its advisory id and fix version."""
    result = cli("health", str(orders), "--json", env=index_env)
    assert result.returncode == 1, result.stderr  # vulnerable pins, like pip-audit
    report = json.loads(result.stdout)
    pins = {pin["package"]: pin for pin in report["pins"]}
    assert [a["id"] for a in pins["pyarrow"]["advisories"]] == ["PYSEC-2023-238"]
    assert pins["pyarrow"]["fixed_in"] == "14.0.1"
    assert [a["id"] for a in pins["requests"]["advisories"]] == ["PYSEC-2023-74"]
    assert pins["requests"]["fixed_in"] == "2.31.0"
    assert pins["pandas"]["advisories"] == [] and pins["pandas"]["pinned"] == "1.5.3"
    assert pins["pandas"]["age_days"] > 365 and pins["pandas"]["latest"] != "1.5.3"
    assert report["runtime"]["runtime"] == "python3.11"
    assert report["advisory_source"] == "osv-directory"

    table = cli("health", str(orders), env=index_env)
    assert "PYSEC-2023-238" in table.stdout and "2 vulnerable" in table.stdout


def test_health_through_pip_audit_and_advisories_serve(
    cli: Cli, orders: Path, index_env: dict[str, str]
) -> None:
    """The real pip-audit, pointed at specfleet's OSV server, finds the same advisories."""
    with start_server(OsvDirectory(ADVISORIES)) as server:
        result = cli(
            "health",
            str(orders),
            "--json",
            "--pip-audit",
            "--osv-url",
            server.query_url,
            env=index_env,
        )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["advisory_source"] == "pip-audit"
    found = {pin["package"]: [a["id"] for a in pin["advisories"]] for pin in report["pins"]}
    assert found["pyarrow"] == ["PYSEC-2023-238"] and found["requests"] == ["PYSEC-2023-74"]


def test_health_reports_bad_pins_and_still_produces_the_rest(
    cli: Cli, orders: Path, index_env: dict[str, str]
) -> None:
    """An unknown package, a version that does not exist and a broken line are each reported."""
    requirements = orders / "requirements.txt"
    requirements.write_text(
        requirements.read_text()
        + "acme-internal-lib==1.0\npandas-stubs==\nnumpy==1.24.99  # typo\n"
    )
    result = cli("health", str(orders), "--json", env=index_env)
    report = json.loads(result.stdout)
    notes = {(pin["package"], pin["pinned"]): pin["notes"] for pin in report["pins"]}
    assert any("private package" in note for note in notes[("acme-internal-lib", "1.0")])
    assert any("not a release" in note for note in notes[("numpy", "1.24.99")])
    assert any(problem["line"] == 16 for problem in report["problems"]), report["problems"]
    assert ("pyarrow", "14.0.0") in notes  # the rest of the report is still there


def test_health_without_an_advisory_source_says_how_to_configure_one(
    cli: Cli, orders: Path
) -> None:
    """No advisory directory configured: exit 2 with the setting to use."""
    result = cli("health", str(orders))
    assert result.returncode == 2
    assert "SPECFLEET_ADVISORY_DIR" in result.stderr


def test_remediate_writes_only_the_changed_pins(
    cli: Cli, orders: Path, index_env: dict[str, str]
) -> None:
    """remediate --write moves pyarrow and requests to their fixes, citing the advisories,
    and the requirements file differs from the original only on those two lines."""
    before = (orders / "requirements.txt").read_text()
    result = cli("remediate", str(orders), "--write", env=index_env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "PYSEC-2023-238" in result.stdout and "PYSEC-2023-74" in result.stdout
    after = (orders / "requirements.txt").read_text()
    changed = [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        "-pyarrow==14.0.0",
        "+pyarrow==14.0.1",
        "-requests==2.28.2",
        "+requests==2.31.0",
    ]
    again = cli("remediate", str(orders), env=index_env)
    assert "Nothing to change" in again.stdout


def test_remediate_needs_permission_to_cross_a_major_version(
    cli: Cli, tmp_path: Path, index_env: dict[str, str]
) -> None:
    """customer_revenue's duckdb fix is a new 0.x minor: blocked (exit 1) unless allowed."""
    repo = Path(shutil.copytree(EXAMPLES / "customer_revenue", tmp_path / "cr"))
    blocked = cli("remediate", str(repo), env=index_env)
    assert blocked.returncode == 1
    assert "PYSEC-2024-25" in blocked.stdout and "new major version" in blocked.stdout
    allowed = cli("remediate", str(repo), "--allow-major", "--write", env=index_env)
    assert allowed.returncode == 0, allowed.stdout
    assert "duckdb==0.10.0" in (repo / "requirements.txt").read_text()


def test_remediate_policy_floor_cites_the_rule(
    cli: Cli, orders: Path, index_env: dict[str, str]
) -> None:
    """A policy floor (pandas >= 2.2) is proposed with its rule id when majors are allowed."""
    result = cli(
        "remediate",
        str(orders),
        "--minimum",
        "ORG-PY-004:pandas>=2.2",
        "--allow-major",
        env=index_env,
    )
    assert result.returncode == 0, result.stdout
    assert "ORG-PY-004" in result.stdout and "+pandas==2.2.0" in result.stdout
