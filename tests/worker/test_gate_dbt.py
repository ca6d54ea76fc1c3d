"""The gate on shop_marts, a dbt-duckdb project that builds inside its checkout.

dbt reads seeds/ and writes warehouse.duckdb beside dbt_project.yml, never {inputs} or
{outputs}; the gate must still check the contract of both tables in that one file, diff their
data, and provoke the failure mode for real (the seed gone, dbt exits 2, no DuckDB file).
"""

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


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnvironmentCache, SideResultCache]:
    root = tmp_path_factory.mktemp("caches")
    return EnvironmentCache(root / "environments"), SideResultCache(root / "results")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(EXAMPLES / "shop_marts", tmp_path_factory.mktemp("b") / "repo"))


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


def test_unchanged_dbt_project_is_verified_on_every_table(
    baseline: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    same = Path(shutil.copytree(baseline, tmp_path / "same"))
    verdict = gate(baseline, same, caches)
    report = render_verdict(verdict)
    assert verdict.publishable, (verdict.reasons, report[:3000])
    # both tables of the one DuckDB file were read and compared row by row
    assert set(verdict.candidate.schemas) == {"daily_revenue", "customer_orders"}
    assert all(schema is not None for schema in verdict.candidate.schemas.values())
    assert sorted(diff.output for diff in verdict.data) == ["customer_orders", "daily_revenue"]
    assert all(diff.identical and diff.baseline_rows > 0 for diff in verdict.data)
    # the failure mode really ran dbt without the seed: exit 2, no warehouse left behind
    (mode,) = verdict.candidate.failure_modes
    assert mode.passed, mode.problems
    assert mode.run.exit_code == 2 and "raw_orders" in mode.run.stdout
    assert verdict.candidate.build is not None and verdict.candidate.build.exit_code == 0
    assert verdict.candidate.tests is not None and verdict.candidate.tests.ok
    assert not any("no output appeared" in warning for warning in verdict.warnings)


def test_candidate_dropping_a_column_fails_the_contract_naming_it(
    baseline: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    candidate = Path(shutil.copytree(baseline, tmp_path / "candidate"))
    model = candidate / "models" / "marts" / "customer_orders.sql"
    model.write_text(model.read_text().replace("    c.email,\n", "").replace(", c.email,", ","))
    verdict = gate(baseline, candidate, caches)
    assert "an output breaks its contract" in verdict.reasons
    errors = {(d.output, d.column) for d in verdict.contract if d.level == "error"}
    assert ("customer_orders", "email") in errors
    assert "email" in render_verdict(verdict)


def test_build_writing_elsewhere_is_reported(
    baseline: Path, caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """A checkout build whose outputs never appear where declared gets a warning that says so."""
    candidate = Path(shutil.copytree(baseline, tmp_path / "elsewhere"))
    profiles = candidate / "profiles.yml"
    profiles.write_text(
        profiles.read_text().replace("path: warehouse.duckdb", "path: other.duckdb")
    )
    verdict = gate(baseline, candidate, caches)
    assert not verdict.publishable
    assert any("no output appeared where the spec declares it" in w for w in verdict.warnings)


def test_baseline_whose_dbt_build_fails_needs_its_owner_naming_the_model(
    caches: tuple[EnvironmentCache, SideResultCache], tmp_path: Path
) -> None:
    """A broken model on the default branch: the owner is told which model, not ops a crash."""
    from specfleet.worker.pipeline.verification import baseline_build_broken, baseline_problem

    broken = Path(shutil.copytree(EXAMPLES / "shop_marts", tmp_path / "broken"))
    model = broken / "models" / "marts" / "daily_revenue.sql"
    model.write_text(model.read_text().replace("sum(amount)", "sum(amount_eur)"))
    verdict = gate(broken, broken, caches)
    reason = baseline_build_broken(verdict)
    assert reason is not None and "model daily_revenue" in reason, reason
    assert "models/marts/daily_revenue.sql" in reason
    assert baseline_problem(verdict) is not None  # still no publishable candidate
