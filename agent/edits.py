"""Apply SEARCH/REPLACE edits to text: exact first, then whitespace-tolerant, else a typed miss.

A miss is a value (:class:`EditMiss`) carrying the nearest passage of the file, so the
repair round can show the model what the file really says instead of letting it guess again.
Nothing here touches the file system.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

MissKind = Literal["not-found", "ambiguous", "empty-search"]


@dataclass(frozen=True)
class EditMiss:
    """Why a SEARCH block could not be applied, and where the closest text is."""

    kind: MissKind
    message: str
    nearest: str | None = None
    nearest_line: int | None = None  # 1-based line where the nearest passage starts
    similarity: float = 0.0

    def render(self) -> str:
        if self.nearest is None:
            return self.message
        return (
            f"{self.message}; the nearest passage (line {self.nearest_line}, "
            f"{self.similarity:.0%} similar) is:\n{self.nearest}"
        )


@dataclass(frozen=True)
class Replaced:
    text: str
    tolerant: bool  # matched only after ignoring whitespace differences


def apply_search_replace(text: str, search: str, replace: str) -> Replaced | EditMiss:
    """Replace the one occurrence of ``search`` in ``text``."""
    if not search.strip():
        return EditMiss("empty-search", "the SEARCH text is empty; use a whole-file write")
    count = text.count(search)
    if count == 1:
        return Replaced(text.replace(search, replace, 1), tolerant=False)
    if count > 1:
        return EditMiss(
            "ambiguous",
            f"the SEARCH text occurs {count} times; include more surrounding lines",
        )
    return _tolerant(text, search, replace)


def _tolerant(text: str, search: str, replace: str) -> Replaced | EditMiss:
    """Match line by line ignoring indentation and trailing blanks; re-indent the replacement."""
    lines = text.splitlines(keepends=True)
    wanted = _trim_blank_edges(search.splitlines())
    if not wanted:
        return EditMiss("empty-search", "the SEARCH text is empty; use a whole-file write")
    keys = [line.strip() for line in wanted]
    size = len(wanted)
    matches = [
        start
        for start in range(len(lines) - size + 1)
        if [line.strip() for line in lines[start : start + size]] == keys
    ]
    if len(matches) > 1:
        return EditMiss(
            "ambiguous",
            f"the SEARCH text matches {len(matches)} places when whitespace is ignored; "
            "include more surrounding lines",
        )
    if not matches:
        return _nearest_miss(lines, wanted)
    start = matches[0]
    found = lines[start : start + size]
    shift = _indent(found[_first_content(found)]) - _indent(wanted[_first_content(wanted)])
    ending = "\n" if not found[-1].endswith("\n") else found[-1][len(found[-1].rstrip("\r\n")) :]
    replacement = [_reindent(line, shift) for line in replace.splitlines()]
    new = "".join(line + ending for line in replacement)
    if not found[-1].endswith(("\n", "\r")) and new.endswith(ending):
        new = new[: -len(ending)]
    return Replaced("".join(lines[:start]) + new + "".join(lines[start + size :]), tolerant=True)


def _nearest_miss(lines: list[str], wanted: list[str]) -> EditMiss:
    size = len(wanted)
    target = "\n".join(line.strip() for line in wanted)
    best_ratio, best_start = 0.0, None
    for start in range(max(1, len(lines) - size + 1)):
        window = "\n".join(line.strip() for line in lines[start : start + size])
        matcher = difflib.SequenceMatcher(None, target, window, autojunk=False)
        if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_ratio, best_start = ratio, start
    message = "the SEARCH text is not in the file (not even with whitespace ignored)"
    if best_start is None or best_ratio < 0.3:
        return EditMiss("not-found", message)
    nearest = "".join(lines[best_start : best_start + size]).rstrip("\n")
    return EditMiss("not-found", message, nearest, best_start + 1, round(best_ratio, 3))


def _trim_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _first_content(lines: list[str]) -> int:
    return next((index for index, line in enumerate(lines) if line.strip()), 0)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _reindent(line: str, shift: int) -> str:
    if not line.strip():
        return line.strip(" \t")
    if shift > 0:
        return " " * shift + line
    if shift < 0:
        removable = min(-shift, _indent(line))
        return line[removable:]
    return line
