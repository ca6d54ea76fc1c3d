"""The verification gate on the orders example: green when unchanged, and each layer catching
the change it exists for (contract, data, failure modes), rendered as the MR's tables."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from specfleet.core.spec import load_spec
from specfleet.worker.report import render_verdict
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.gate import Verdict, verify
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.network
BUILD = Path("pipeline/build.py")
INPUTS = Path("pipeline/inputs.py")


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> EnvironmentCache:
    return EnvironmentCache(tmp_path_factory.mktemp("environments"))


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(EXAMPLES / "orders", tmp_path_factory.mktemp("b") / "orders"))


def candidate(tmp_path: Path, file: Path, old: str, new: str) -> Path:
    repo = Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "candidate"))
    text = (repo / file).read_text()
    assert old in text, f"the example changed: {old!r} not in {file}"
    (repo / file).write_text(text.replace(old, new, 1))
    return repo


Gate = Callable[[Path], Verdict]


@pytest.fixture
def gate(baseline: Path, environments: EnvironmentCache) -> Gate:
    def run(repo: Path) -> Verdict:
        return verify(load_spec(repo / "dataproduct.yaml"), baseline, repo, environments)

    return run


def test_unchanged_candidate_verifies_green(gate: Gate, tmp_path: Path) -> None:
    """The same code on both sides: builds, 24 tests pass, no difference, modes hold."""
    repo = Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "same"))
    verdict = gate(repo)
    tests = verdict.candidate.tests
    assert verdict.publishable, (
        verdict.reasons,
        tests and tests.stdout[:3000],
        tests and tests.stderr[-800:],
    )
    assert verdict.candidate.tests is not None and verdict.candidate.tests.junit is not None
    assert verdict.candidate.tests.junit.failed == 0 and verdict.candidate.tests.junit.passed > 0
    assert [mode.id for mode in verdict.candidate.failure_modes] == ["F1", "F2", "F3"]
    assert all(diff.identical for diff in verdict.data)
    report = render_verdict(verdict)
    assert report.startswith("**Verification: passed.**")
    assert "| F1 | raw_orders missing |" in report and "held" in report


def test_dropping_an_output_column_fails_the_contract(gate: Gate, tmp_path: Path) -> None:
    """A candidate that stops writing item_count breaks the contract, naming the column."""
    repo = candidate(
        tmp_path,
        BUILD,
        "    table = pa.Table.from_pandas(orders, schema=ORDERS_SCHEMA, preserve_index=False)",
        "    schema = pa.schema([f for f in ORDERS_SCHEMA if f.name != 'item_count'])\n"
        "    table = pa.Table.from_pandas(orders.drop(columns=['item_count']), schema=schema,"
        " preserve_index=False)",
    )
    verdict = gate(repo)
    assert not verdict.publishable
    assert "an output breaks its contract" in verdict.reasons
    errors = {(d.kind, d.column) for d in verdict.contract if d.level == "error"}
    assert ("column-missing", "item_count") in errors or ("column-removed", "item_count") in errors
    assert "item_count" in render_verdict(verdict)


def test_a_value_changed_beyond_tolerance_fails_the_data_layer(gate: Gate, tmp_path: Path) -> None:
    """One item_count off by one: the data diff names the row and both values."""
    repo = candidate(
        tmp_path,
        BUILD,
        "    table = pa.Table.from_pandas(orders, schema=ORDERS_SCHEMA, preserve_index=False)",
        "    orders = orders.copy()\n"
        "    orders.loc[orders.index[0], 'item_count'] += 1\n"
        "    table = pa.Table.from_pandas(orders, schema=ORDERS_SCHEMA, preserve_index=False)",
    )
    verdict = gate(repo)
    assert "output data changed beyond the spec's tolerances" in verdict.reasons
    (diff,) = verdict.data
    assert diff.changed_rows == 1 and diff.changed_columns == {"item_count": 1}
    (example,) = diff.examples
    assert example.key[0][0] == "order_id" and int(example.candidate) == int(example.baseline) + 1
    assert "| item_count |" in render_verdict(verdict)


def test_swallowing_a_missing_input_breaks_its_failure_mode(gate: Gate, tmp_path: Path) -> None:
    """A candidate that treats a missing input as empty no longer fails as F1 requires."""
    repo = candidate(
        tmp_path,
        INPUTS,
        'raise InputProblem(f"input {name} is missing: expected {path}", EXIT_INPUT_MISSING)',
        "return pd.DataFrame(columns=list(columns))",
    )
    verdict = gate(repo)
    broken = {mode.id for mode in verdict.candidate.failure_modes if not mode.passed}
    assert "F1" in broken
    assert any(reason.startswith("failure modes not honoured") for reason in verdict.reasons)
    assert "**broken**" in render_verdict(verdict)
