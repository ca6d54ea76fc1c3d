"""Shared fixtures: a copy of the pinned inputs, and the build run the way the verifier runs it.

The build is run as a subprocess (``python -m pipeline.build``) from the repository root, so the
tests exercise the real command line, exit codes and files, not just the functions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = {
    "raw_orders": REPO / "fixtures" / "raw_orders.csv",
    "payments": REPO / "fixtures" / "payments.csv",
}


def copy_inputs(directory: Path) -> Path:
    """Lay the fixtures out as the verifier does: ``<input name>.<format>``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, fixture in FIXTURES.items():
        shutil.copyfile(fixture, directory / f"{name}.csv")
    return directory


def run_build(inputs: Path, outputs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.build", "--input", str(inputs), "--output", str(outputs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return copy_inputs(tmp_path / "inputs")


@pytest.fixture(scope="session")
def orders_table(tmp_path_factory: pytest.TempPathFactory):
    """The product built once from the fixtures, read back as a pyarrow table."""
    base = tmp_path_factory.mktemp("build")
    result = run_build(copy_inputs(base / "inputs"), base / "outputs")
    assert result.returncode == 0, result.stderr
    return pq.read_table(base / "outputs" / "orders.parquet")


@pytest.fixture(scope="session")
def orders(orders_table) -> dict[int, dict]:
    """Rows of the built product by order_id."""
    return {row["order_id"]: row for row in orders_table.to_pylist()}
