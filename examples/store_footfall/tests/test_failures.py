"""Failure modes: the build must stop with the documented exit code and write nothing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_build


def _assert_no_outputs(outputs: Path) -> None:
    assert not outputs.exists() or not any(outputs.iterdir())


# R5, F1
def test_missing_door_counts(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "door_counts.csv").unlink()
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "door_counts" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R5
def test_empty_door_counts(inputs_dir: Path, tmp_path: Path):
    (inputs_dir / "door_counts.csv").write_text("store_id,door_id,hour_start,entries,exits\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 3
    assert "door_counts is empty" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6
def test_repeated_hour_rejected(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "door_counts.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 4
    assert "repeated" in result.stderr
    _assert_no_outputs(tmp_path / "out")


# R6
def test_time_without_offset_rejected(inputs_dir: Path, tmp_path: Path):
    path = inputs_dir / "door_counts.csv"
    path.write_text(path.read_text().replace("2025-03-01T10:00:00Z", "2025-03-01T10:00:00", 1))
    result = run_build(inputs_dir, tmp_path / "out")
    assert result.returncode == 4
    assert "no UTC offset" in result.stderr
    _assert_no_outputs(tmp_path / "out")
