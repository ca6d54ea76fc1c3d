"""Failure modes: the runner must stop with the documented exit code and leave no output."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_build


def _assert_no_outputs(outputs: Path) -> None:
    assert not outputs.exists() or not any(outputs.iterdir())


# R6, F1
def test_missing_customers(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "customers.csv").unlink()
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "customers" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6, F2
def test_missing_orders(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "orders.csv").unlink()
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "input orders is missing" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6, F3
def test_empty_orders(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "orders.csv").write_bytes(b"")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 3
    assert "orders is empty" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6
def test_header_only_customers(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "customers.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 3
    assert "customers is empty" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R7
def test_repeated_order_id_rejected(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "orders.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 4
    assert "order_id is repeated (5001)" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R7
def test_badly_typed_value_rejected(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "orders.csv"
    # A day-first local time, as a misconfigured export would write it.
    path.write_text(path.read_text().replace("2025-03-01T08:12:00+01:00", "01/03/2025 08:12", 1))
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 4
    assert "input orders" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6
def test_existing_outputs_left_alone_on_failure(inputs_dir: Path, tmp_path: Path):
    outputs = tmp_path / "out"
    assert run_build(inputs_dir, outputs).returncode == 0
    before = {p.name: p.read_bytes() for p in outputs.iterdir()}
    (inputs_dir / "customers.csv").unlink()
    assert run_build(inputs_dir, outputs).returncode == 2
    assert {p.name: p.read_bytes() for p in outputs.iterdir()} == before
