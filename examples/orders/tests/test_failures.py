"""Failure modes: the build must stop with the documented exit code and leave no output."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline.errors import InputProblem
from pipeline.transform import parse_cents, parse_utc

from tests.conftest import run_build


def _assert_no_outputs(outputs: Path) -> None:
    assert not outputs.exists() or not any(outputs.iterdir())


# R8, F1
def test_missing_raw_orders(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "raw_orders.csv").unlink()
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "raw_orders" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R8, F3
def test_missing_payments(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "payments.csv").unlink()
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "payments" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R8, F2
def test_empty_raw_orders(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "raw_orders.csv").write_bytes(b"")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 3
    assert "raw_orders is empty" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R8
def test_header_only_raw_orders(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "raw_orders.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 3
    assert "raw_orders is empty" in result.stderr
    _assert_no_outputs(tmp_path / "out")


def test_header_only_payments_is_fine(inputs_dir: Path, tmp_path: Path):
    # A day without payments is possible; every order is then unpaid (R1).
    path = inputs_dir / "payments.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "orders.parquet").is_file()


def test_unknown_status_rejected(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "raw_orders.csv"
    path.write_text(path.read_text().replace(",placed\n", ",on_hold\n", 1))
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 4
    assert "on_hold" in result.stderr
    _assert_no_outputs(tmp_path / "out")


def test_existing_output_left_alone_on_failure(inputs_dir: Path, tmp_path: Path):
    # A failed build must not replace or truncate yesterday's good file.
    outputs = tmp_path / "out"
    assert run_build(inputs_dir, outputs).returncode == 0
    before = (outputs / "orders.parquet").read_bytes()
    (inputs_dir / "raw_orders.csv").write_bytes(b"")
    assert run_build(inputs_dir, outputs).returncode == 3
    assert (outputs / "orders.parquet").read_bytes() == before
    assert [p.name for p in outputs.iterdir()] == ["orders.parquet"]


@pytest.mark.parametrize("text", ["12.505", "-1.00", "twelve"])
def test_amounts_must_be_whole_non_negative_cents(text: str):
    with pytest.raises(InputProblem):
        parse_cents(text, where="test")


def test_times_without_offset_rejected():
    with pytest.raises(InputProblem, match="no UTC offset"):
        parse_utc("2025-03-01T09:15:04", where="test")
