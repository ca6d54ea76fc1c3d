"""Comparing two directory trees: which repository files differ, and their unified diff.

Version-control and cache directories are not part of a product's files.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

IGNORED_PARTS = (".git", "__pycache__", ".pytest_cache", ".venv")


def _files(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in IGNORED_PARTS for part in relative.parts):
            continue
        if path.is_file() or path.is_symlink():
            found[relative.as_posix()] = path
    return found


def changed_files(before: Path, after: Path) -> tuple[str, ...]:
    """Repository-relative files that differ between two trees (added, removed, changed)."""
    old, new = _files(before), _files(after)
    changed = [
        path
        for path in sorted(set(old) | set(new))
        if path not in old or path not in new or old[path].read_bytes() != new[path].read_bytes()
    ]
    return tuple(changed)


def unified_diff(before: Path, after: Path, files: Sequence[str]) -> str:
    parts: list[str] = []
    for path in files:
        old = _text(before / path)
        new = _text(after / path)
        parts.extend(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{path}" if (before / path).exists() else "/dev/null",
                tofile=f"b/{path}" if (after / path).exists() else "/dev/null",
            )
        )
    return "".join(parts)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
