"""The verification gate on customer_revenue (DuckDB SQL, parquet and DuckDB-table outputs) and
store_footfall (stdlib, csv): green when unchanged; each layer catches the change it exists
for; and a side's evidence is reused when code, environment, fixtures and spec are the same."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specfleet.core.spec import load_spec
from specfleet.worker.report import render_verdict
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.gate import Verdict, verify
from specfleet.worker.verify.results import SideResultCache
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.network

# where each example's build reports an input problem and how one row's value can be nudged
MUTATIONS = {
    "store_footfall": {
        "build": Path("footfall/build.py"),
        "drop": (
            'writer = csv.DictWriter(out, fieldnames=OUTPUT_COLUMNS, lineterminator="\\n")',
            "writer = csv.DictWriter(out, fieldnames=[c for c in OUTPUT_COLUMNS"
            ' if c != "doors_reporting"], extrasaction="ignore", lineterminator="\\n")',
        ),
        "dropped": "doors_reporting",
        "nudge": (
            "    return rows\n\n\ndef write_csv_atomically",
            '    rows[0]["visitors"] = str(int(rows[0]["visitors"]) + 5)\n'
            "    return rows\n\n\ndef write_csv_atomically",
        ),
        "nudged": ("daily_footfall", "visitors"),
        "swallowed": "F1",
    },
    "customer_revenue": {
        "build": Path("models/daily_revenue.sql"),
        "drop": (
            "CAST(avg(o.amount) AS DOUBLE) AS avg_order_value",
            "CAST(avg(o.amount) AS VARCHAR) AS avg_order_value",
        ),
        "dropped": "avg_order_value",
        "nudge": (
            "CAST(sum(o.amount) AS DECIMAL(12, 2)) AS revenue",
            "CAST(sum(o.amount) + CASE WHEN o.order_day = (SELECT min(order_day) FROM stg_orders)"
            " AND coalesce(c.country, 'unknown') = (SELECT min(country) FROM stg_customers)"
            " THEN 1 ELSE 0 END AS DECIMAL(12, 2)) AS revenue",
        ),
        "nudged": ("daily_revenue", "revenue"),
        "swallowed": "F1",
    },
}
MAIN = {
    "store_footfall": Path("footfall/build.py"),
    "customer_revenue": Path("pipeline/run.py"),
}


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnvironmentCache, SideResultCache]:
    root = tmp_path_factory.mktemp("caches")
    return EnvironmentCache(root / "environments"), SideResultCache(root / "results")


@pytest.fixture(scope="module", params=sorted(MUTATIONS))
def example(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name: str = request.param
    return Path(shutil.copytree(EXAMPLES / name, tmp_path_factory.mktemp("b") / name))


def gate(
    baseline: Path, candidate: Path, caches: tuple[EnvironmentCache, SideResultCache]
) -> Verdict:
    environments, results = caches
    return verify(
        load_spec(candidate / "dataproduct.yaml"),
        baseline,
        candidate,
        environments,
        results=results,
        window="2026-W48",
    )


def mutated(baseline: Path, tmp_path: Path, file: Path, old: str, new: str) -> Path:
    repo = Path(shutil.copytree(baseline, tmp_path / "candidate"))
    text = (repo / file).read_text()
    assert old in text, f"the example changed: {old!r} not in {file}"
    (repo / file).write_text(text.replace(old, new, 1))
    return repo


def test_unchanged_candidate_verifies_green_and_reuses_evidence(
    example: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """Same code: publishable, every failure mode held; a second run reuses both sides."""
    same = Path(shutil.copytree(example, tmp_path / "same"))
    verdict = gate(example, same, caches)
    assert verdict.publishable, (verdict.reasons, render_verdict(verdict)[:3000])
    assert verdict.candidate.failure_modes and all(
        m.passed for m in verdict.candidate.failure_modes
    )
    assert all(diff.identical for diff in verdict.data)
    assert render_verdict(verdict).startswith("**Verification: passed.**")

    again = gate(example, same, caches)
    assert again.baseline.reused and again.candidate.reused
    assert again.publishable and all(diff.identical for diff in again.data)
    assert "were reused" in render_verdict(again)


def test_changed_output_column_fails_the_contract(
    example: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """A dropped or retyped output column is a contract error naming the column."""
    mutation = MUTATIONS[example.name]
    old, new = mutation["drop"]  # type: ignore[misc]
    verdict = gate(example, mutated(example, tmp_path, mutation["build"], old, new), caches)  # type: ignore[arg-type]
    assert "an output breaks its contract" in verdict.reasons
    assert verdict.baseline.reused  # the baseline was not rebuilt for this candidate
    columns = {d.column for d in verdict.contract if d.level == "error"}
    assert mutation["dropped"] in columns
    assert str(mutation["dropped"]) in render_verdict(verdict)


def test_value_beyond_tolerance_fails_the_data_layer(
    example: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """One value nudged past its tolerance: the data diff shows the row's key and both values."""
    mutation = MUTATIONS[example.name]
    old, new = mutation["nudge"]  # type: ignore[misc]
    verdict = gate(example, mutated(example, tmp_path, mutation["build"], old, new), caches)  # type: ignore[arg-type]
    assert "output data changed beyond the spec's tolerances" in verdict.reasons
    output, column = mutation["nudged"]  # type: ignore[misc]
    (diff,) = [diff for diff in verdict.data if diff.output == output]
    assert diff.changed_columns.get(column, 0) >= 1
    example_row = next(change for change in diff.examples if change.column == column)
    assert example_row.baseline != example_row.candidate and example_row.key
    report = render_verdict(verdict)
    assert f"| {column} |" in report and example_row.candidate in report


def test_swallowed_missing_input_breaks_the_failure_mode(
    example: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """A build that exits 0 on a missing input no longer honours its failure mode."""
    mutation = MUTATIONS[example.name]
    repo = mutated(example, tmp_path, MAIN[example.name], "return problem.exit_code", "return 0")
    verdict = gate(example, repo, caches)
    broken = {mode.id for mode in verdict.candidate.failure_modes if not mode.passed}
    assert mutation["swallowed"] in broken
    assert any(reason.startswith("failure modes not honoured") for reason in verdict.reasons)
    assert "**broken**" in render_verdict(verdict)
