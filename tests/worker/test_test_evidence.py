"""Issue 16: verification refuses a candidate whose test run is weaker than the baseline's.

Both sides' reports come from real pytest runs (``--junitxml``) of a small product; the
comparison is the gate's own (a Verdict's reasons).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from specfleet.worker.verify import evidence
from specfleet.worker.verify.gate import Verdict
from specfleet.worker.verify.junit import parse_junit
from specfleet.worker.verify.model import RunResult, SideResult

TESTS = """import pytest


def test_one():
    assert 1 == 1


def test_two():
    assert 2 == 2


@pytest.mark.parametrize("n", [1, 2])
def test_many(n):
    assert n
"""


def _side(
    tmp_path: Path, label: str, tests: str, extra: dict[str, str] | None = None
) -> SideResult:
    repo = tmp_path / label
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_product.py").write_text(tests)
    for path, text in (extra or {}).items():
        (repo / path).write_text(text)
    junit = tmp_path / f"{label}.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
         f"--junitxml={junit}"],
        cwd=repo, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    run = RunResult("pytest", done.returncode, 0.1, done.stdout, done.stderr, "subprocess",
                    junit=parse_junit(junit, repo))  # fmt: skip
    build = RunResult("build", 0, 0.1, "", "", "subprocess")
    return SideResult(label, None, None, build, run, {}, (), ())


def _verdict(baseline: SideResult, candidate: SideResult) -> Verdict:
    return Verdict("p", baseline, candidate, (), ())


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> SideResult:
    return _side(tmp_path_factory.mktemp("evidence"), "baseline", TESTS)


def test_the_same_tests_are_publishable(baseline: SideResult, tmp_path: Path) -> None:
    candidate = _side(tmp_path, "same", TESTS)
    assert evidence.weaker_test_evidence(baseline, candidate) == []
    assert _verdict(baseline, candidate).publishable


def test_a_deselected_test_is_refused_by_name(baseline: SideResult, tmp_path: Path) -> None:
    """A conftest hook emptying part of the collection: fewer tests, named."""
    hook = "def pytest_collection_modifyitems(items):\n    del items[1:]\n"
    candidate = _side(tmp_path, "deselected", TESTS, {"conftest.py": hook})
    reasons = _verdict(baseline, candidate).reasons
    assert any("fewer tests than the baseline (1 < 4)" in r for r in reasons), reasons
    assert any("tests/test_product.py::test_two" in r for r in reasons), reasons


def test_a_skipped_or_xfailed_test_is_refused(baseline: SideResult, tmp_path: Path) -> None:
    """Same ids, but one skipped and one xfailed: the candidate proves less."""
    weakened = TESTS.replace("def test_one", "@pytest.mark.skip\ndef test_one").replace(
        "def test_two", "@pytest.mark.xfail(run=False)\ndef test_two"
    )
    candidate = _side(tmp_path, "skipped", weakened)
    reasons = evidence.weaker_test_evidence(baseline, candidate)
    assert any("skips or xfails more tests than the baseline (2 > 0)" in r for r in reasons)
    assert any("test_one" in r and "test_two" in r for r in reasons if "are skipped" in r)
    assert not _verdict(baseline, candidate).publishable


def test_more_tests_are_fine(baseline: SideResult, tmp_path: Path) -> None:
    """An amendment's new test adds evidence; nothing is refused."""
    candidate = _side(tmp_path, "more", TESTS + "\n\ndef test_three():\n    assert 3\n")
    assert evidence.weaker_test_evidence(baseline, candidate) == []
