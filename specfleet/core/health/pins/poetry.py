"""``poetry.lock``: every package Poetry resolved, read with its line and group; moved by an
in-place edit (Poetry has no command that moves one locked package to an exact version
without touching pyproject.toml), after which ``poetry lock --no-update`` restores hashes.

Poetry's ``[metadata] python-versions`` is the product's Python target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from specfleet.core.health.pins import blocks
from specfleet.core.health.pins.model import (
    NOT_REGISTRY,
    Collector,
    PinProblem,
    Rewrite,
    locked_pin,
    relative,
)
from specfleet.core.health.pins.uvlock import edit_toml_lock, load_toml


def read_poetry_lock(reader: Collector, path: Path) -> str | None:
    """Add the lock's packages to ``reader``; return its ``python-versions``."""
    text = reader.text(path)
    if text is None:
        return None
    rel = relative(reader.root, path)
    document = load_toml(reader, rel, text)
    if document is None:
        return None
    packages = document.get("package", [])
    located = blocks.package_blocks(text.splitlines())
    if not isinstance(packages, list) or len(located) != len(packages):
        reader.broken(rel, 0, "the [[package]] tables are not laid out as Poetry writes them")
        return None
    for block, package in zip(located, packages, strict=True):
        _read_package(reader, rel, block, package)
    metadata = document.get("metadata", {})
    python = metadata.get("python-versions") if isinstance(metadata, dict) else None
    return python if isinstance(python, str) else None


def _read_package(reader: Collector, rel: str, block: blocks.Block, package: Any) -> None:
    line = block.name_line + 1 if block.name_line >= 0 else block.start + 1
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        reader.problems.append(PinProblem(rel, line, "", "a [[package]] without a name"))
        return
    name = package["name"]
    source = package.get("source")
    if isinstance(source, dict) and source.get("type") not in (None, "legacy"):
        reader.problems.append(
            PinProblem(rel, line, name, f"{NOT_REGISTRY} (installed from {source.get('type')})")
        )
        return
    pin = locked_pin(name, str(package.get("version", "")), rel, line, group=_group(package))
    if pin is None:
        reader.problems.append(PinProblem(rel, line, name, f"{name} has no usable version"))
        return
    reader.pins.append(pin)


def _group(package: dict[str, Any]) -> str | None:
    """None for the main group, else the group (Poetry 2 ``groups``, Poetry 1 ``category``)."""
    groups = package.get("groups")
    if isinstance(groups, list) and groups and "main" not in groups:
        return str(groups[0])
    category = package.get("category")
    if isinstance(category, str) and category != "main":
        return category
    return None


def edit_poetry_lock(text: str, changes: Mapping[NormalizedName, str]) -> Rewrite:
    """Move the named packages in place; their ``files`` (hashes of the old release) go."""
    rewrite = edit_toml_lock(text, changes, drop_keys=(), relock="poetry lock --no-update")
    # an empty list rather than no key: Poetry's loader expects ``files`` on every package
    new_text = _empty_files(text, rewrite.text, {change.name for change in rewrite.changed})
    return Rewrite(new_text, rewrite.changed, rewrite.notes)


def _empty_files(original: str, text: str, names: set[NormalizedName]) -> str:
    del original
    if not names:
        return text
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for block in blocks.package_blocks([line.rstrip("\r\n") for line in lines]):
        name = blocks.string_value(lines[block.name_line], "name") if block.name_line >= 0 else None
        if name is None or re.sub(r"[-_.]+", "-", name).lower() not in names:
            continue
        first = blocks.top_level_key_line(lines, block, "files")
        if first < 0:
            continue
        end = blocks.value_span(lines, first)
        lines[first] = "files = []" + blocks.line_ending(lines[end - 1])
        drop.update(range(first + 1, end))
    return "".join(line for index, line in enumerate(lines) if index not in drop)
