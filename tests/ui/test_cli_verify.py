"""``specfleet verify``: two refs of a real repository built, tested and compared from the
command line; the exit code says whether the candidate is publishable."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.network


@pytest.fixture
def footfall(make_repo) -> Path:  # type: ignore[no-untyped-def]
    """store_footfall on main, and a branch whose build stops writing doors_reporting."""
    path: Path = make_repo(source=EXAMPLES / "store_footfall", name="store_footfall")
    repo = git.Repo(path)
    repo.git.checkout("-b", "broken")
    build = path / "footfall" / "build.py"
    build.write_text(
        build.read_text().replace(
            'writer = csv.DictWriter(out, fieldnames=OUTPUT_COLUMNS, lineterminator="\\n")',
            "writer = csv.DictWriter(out, fieldnames=[c for c in OUTPUT_COLUMNS"
            ' if c != "doors_reporting"], extrasaction="ignore", lineterminator="\\n")',
        )
    )
    repo.git.commit("-am", "stop writing doors_reporting")
    repo.git.checkout("main")
    return path


def test_verify_unchanged_ref_is_publishable(cli, footfall: Path) -> None:  # type: ignore[no-untyped-def]
    """main against main: exit 0 and the passed headline in the Markdown report."""
    result = cli(
        "verify",
        str(footfall),
        "--baseline",
        "main",
        "--candidate",
        "main",
        "--markdown",
        "--no-policies",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("**Verification: passed.**")
    assert "| F1 |" in result.stdout


def test_verify_breaking_branch_exits_1_naming_the_column(cli, footfall: Path) -> None:  # type: ignore[no-untyped-def]
    """A branch that drops an output column: exit 1 and the column in the contract table."""
    result = cli(
        "verify",
        str(footfall),
        "--baseline",
        "main",
        "--candidate",
        "broken",
        "--markdown",
        "--no-policies",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "doors_reporting" in result.stdout
    assert result.stdout.startswith("**Verification: failed.**")


def test_verify_unknown_ref_is_a_usage_error(cli, footfall: Path) -> None:  # type: ignore[no-untyped-def]
    """A ref that does not exist: exit 2 with a message naming it, no traceback."""
    result = cli("verify", str(footfall), "--candidate", "no-such-branch", "--no-policies")
    assert result.returncode == 2
    assert "no-such-branch" in result.stderr and "Traceback" not in result.stderr
