"""Shared fixtures: a copy of the pinned input, and the build run the way the verifier runs it."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "door_counts.csv"


def copy_inputs(directory: Path) -> Path:
    """Lay the fixture out as the verifier does: ``<input name>.<format>``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE, directory / "door_counts.csv")
    return directory


def run_build(inputs: Path, outputs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall.build", "--input", str(inputs), "--output", str(outputs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_output(outputs: Path) -> list[dict[str, str]]:
    with (outputs / "daily_footfall.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def inputs_dir(tmp_path: Path) -> Path:
    return copy_inputs(tmp_path / "inputs")


@pytest.fixture(scope="session")
def footfall(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, str]]:
    """The product built once from the fixture: rows by (store_id, day)."""
    base = tmp_path_factory.mktemp("build")
    result = run_build(copy_inputs(base / "inputs"), base / "outputs")
    assert result.returncode == 0, result.stderr
    return {(row["store_id"], row["day"]): row for row in read_output(base / "outputs")}
