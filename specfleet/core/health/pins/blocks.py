"""Line-level surgery on lock files whose tools write one package per block.

uv.lock and poetry.lock are TOML arrays of ``[[package]]`` tables; Pipfile.lock is JSON with
one object per package. Their tools write them in a fixed layout, so a package's block can
be found by its lines and its version changed there, leaving every other byte as it was.
The parsed document (tomllib, json) is always checked against what the lines say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOML_STRING_KEY = r'^(\s*{key}\s*=\s*")([^"]*)(".*)$'


@dataclass(frozen=True)
class Block:
    """The lines of one ``[[package]]`` table, sub-tables included (0-based, end exclusive)."""

    start: int
    end: int
    name_line: int  # 0-based line of its ``name = "…"``, -1 when absent


def package_blocks(lines: list[str], header: str = "[[package]]") -> list[Block]:
    """Every ``[[package]]`` block in order, so the k-th matches the document's k-th package."""
    starts = [index for index, line in enumerate(lines) if line.strip() == header]
    blocks = []
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else _table_end(lines, start)
        name_line = next((i for i in range(start + 1, end) if re.match(r"^name\s*=", lines[i])), -1)
        blocks.append(Block(start, end, name_line))
    return blocks


def _table_end(lines: list[str], start: int) -> int:
    """The last block ends where a table that is not one of its sub-tables begins."""
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped.startswith("[") and not stripped.startswith(("[package.", "[[package.")):
            return index
    return len(lines)


def string_value(line: str, key: str) -> str | None:
    match = re.match(_TOML_STRING_KEY.format(key=re.escape(key)), line.rstrip("\r\n"))
    return match.group(2) if match else None


def set_string(line: str, key: str, value: str) -> str:
    """``key = "old"`` with its value replaced; the line ending and anything after kept."""
    pattern = re.compile(_TOML_STRING_KEY.format(key=re.escape(key)), re.DOTALL)
    match = pattern.match(line)
    if match is None:
        return line
    return match.group(1) + value + match.group(3)


def top_level_key_line(lines: list[str], block: Block, key: str) -> int:
    """The line of ``key = …`` in the block's own table (before its first sub-table)."""
    for index in range(block.start + 1, block.end):
        if lines[index].startswith("["):
            return -1
        if re.match(rf"^{re.escape(key)}\s*=", lines[index]):
            return index
    return -1


def value_span(lines: list[str], first: int) -> int:
    """The line after a ``key = value`` that may be a multi-line array starting at ``first``."""
    text = lines[first]
    if "[" not in text.split("=", 1)[1] or _balanced(text):
        return first + 1
    for index in range(first + 1, len(lines)):
        if lines[index].strip().startswith("]"):
            return index + 1
    return len(lines)


def _balanced(text: str) -> bool:
    return text.count("[") == text.count("]")


def line_ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]
