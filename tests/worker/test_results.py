"""Side-result reuse: keys change with anything that changes the evidence, and a damaged or
half-written entry is a miss, never a wrong verdict."""

from __future__ import annotations

from pathlib import Path

from specfleet.worker.verify.model import RunResult, SideResult
from specfleet.worker.verify.results import SideResultCache, side_key, tree_digest


def _result() -> SideResult:
    build = RunResult("python -m build", 0, 1.5, "built", "", "bwrap")
    return SideResult("baseline", "abc", None, build, None, {}, (), ())


def _key(**changes: str | bool) -> str:
    parts: dict = {
        "checkout": "c",
        "environment": "e",
        "fixtures": "f",
        "spec": "s",
        "provoked": False,
        "sandbox": "bwrap",
        "window": "2026-W48",
    }
    parts.update(changes)
    return side_key(**parts)


def test_key_changes_with_each_input() -> None:
    """Code, environment, fixtures, spec, failure modes, sandbox and week each make a new key."""
    base = _key()
    others = [
        _key(checkout="c2"),
        _key(environment="e2"),
        _key(fixtures="f2"),
        _key(spec="s2"),
        _key(provoked=True),
        _key(sandbox="subprocess"),
        _key(window="2026-W49"),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_tree_digest_sees_content_and_ignores_caches(tmp_path: Path) -> None:
    """Editing a file changes the digest; __pycache__ and .git do not."""
    (tmp_path / "a.py").write_text("x = 1\n")
    first = tree_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert tree_digest(tmp_path) == first
    (tmp_path / "a.py").write_text("x = 2\n")
    assert tree_digest(tmp_path) != first


def test_round_trip_restores_result_and_outputs(tmp_path: Path) -> None:
    """A stored side comes back equal (marked reused) with its output files."""
    cache = SideResultCache(tmp_path / "cache")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "orders.parquet").write_bytes(b"PAR1")
    cache.put("k", _result(), outputs)
    restored_outputs = tmp_path / "restored"
    restored = cache.get("k", restored_outputs)
    assert restored is not None and restored.reused
    assert restored.build == _result().build
    assert (restored_outputs / "orders.parquet").read_bytes() == b"PAR1"


def test_damaged_entry_is_a_miss_and_removed(tmp_path: Path) -> None:
    """A truncated result.json (a crash, a meddling build) is treated as absent."""
    cache = SideResultCache(tmp_path / "cache")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    cache.put("k", _result(), outputs)
    (tmp_path / "cache" / "k" / "result.json").write_text('{"label": ')
    assert cache.get("k", tmp_path / "restored") is None
    assert not (tmp_path / "cache" / "k").exists()
    assert cache.get("missing", tmp_path / "restored") is None
