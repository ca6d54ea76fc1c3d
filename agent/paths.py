"""Paths a plan names must be the paths a reviewer reads: normalised, stripped, unconfusable.

A new file ``dataproduct.yaml`` spelt with a Cyrillic ``\u0430``, or ``requirements.txt `` with a
trailing space, would sit beside the real file looking identical in a diff. So a path must
already be in Unicode NFKC form, no segment may end in a space or a dot (Windows drops them;
people do not see them), and a *new* path may not look like an existing one (same skeleton:
NFKC, case folded, common Cyrillic/Greek homoglyphs mapped to Latin).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import Path

# The Cyrillic and Greek letters that render like Latin ones (Unicode TR39 confusables,
# restricted to the lookalikes of [a-z0-9] after case folding).
HOMOGLYPHS = str.maketrans(
    (
        "\u0430\u0432\u0441\u0501\u0435\u04bb\u0456\u0458\u043a\u04cf\u043c\u043d\u043e\u0440"
        "\u051b\u0455\u0442\u0446\u0475\u051d\u0445\u0443\u050d\u0450\u0451\u0457\u03b1\u03b2"
        "\u03b5\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03b3\u03c9\u03f2\u03f3"
        "\u0461\u0131\u0237\u2113\u01c0"
    ),
    "abcdehijklmhopqstuvwxygeeiabenikvoptuxywcjwijll",
)


# not the product's files: version control, caches and environments
SKIPPED_FOLDERS = frozenset({".git", "__pycache__", ".venv", ".pytest_cache", "node_modules"})


def skeleton(path: str) -> str:
    """What a path looks like to a reader: NFKC, case folded, homoglyphs mapped to Latin."""
    folded = unicodedata.normalize("NFKC", path).casefold()
    return folded.translate(HOMOGLYPHS)


def spelling_problem(path: str) -> str | None:
    """NFKC form and no trailing spaces or dots in any segment."""
    if unicodedata.normalize("NFKC", path) != path:
        return "the path is not in Unicode NFKC form (it could pass for another file)"
    for part in path.split("/"):
        if part != part.rstrip(" .") and part not in (".", ".."):
            return (
                f"a path segment ends in a space or a dot ({part!r}); it would hide as another file"
            )
        if part != part.lstrip(" "):
            return f"a path segment starts with a space ({part!r})"
    return None


def confusable_problem(path: str, existing: Iterable[str]) -> str | None:
    """A new ``path`` that reads like an existing file (but is not it) is refused."""
    wanted = skeleton(path)
    for other in existing:
        if other != path and skeleton(other) == wanted:
            return f"the path looks like the existing {other!r} but is a different file"
    return None


def repository_files(repo: Path, limit: int = 20_000) -> list[str]:
    """The repository's file paths (``.git`` left out), bounded: read, never followed."""
    found: list[str] = []
    for path in sorted(repo.rglob("*")):
        if SKIPPED_FOLDERS & set(path.relative_to(repo).parts):
            continue
        if path.is_file() or path.is_symlink():
            found.append(path.relative_to(repo).as_posix())
            if len(found) >= limit:
                break
    return found
