"""Pipenv: ``Pipfile.lock`` (JSON, ``default`` and ``develop``) is what installs; the
``Pipfile`` (TOML ``[packages]``/``[dev-packages]``) is the intent. The lock is moved by an
in-place edit of the package's ``version`` (its ``hashes`` emptied: ``pipenv lock`` restores
them); ``_meta.requires.python_version`` is the product's Python target.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.health.pins.model import (
    NOT_REGISTRY,
    Collector,
    PinChange,
    PinProblem,
    Rewrite,
    RewriteNote,
    locked_pin,
    make_pin,
    relative,
)

SECTIONS = {"default": None, "develop": "develop"}
_KEY = re.compile(r'^(\s*)"((?:[^"\\]|\\.)*)"\s*:\s*\{\s*$')


def read_pipfile_lock(reader: Collector, path: Path) -> str | None:
    text = reader.text(path)
    if text is None:
        return None
    rel = relative(reader.root, path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        reader.broken(rel, error.lineno, f"not valid JSON: {error.msg} (column {error.colno})")
        return None
    if not isinstance(document, dict):
        reader.broken(rel, 1, "not a Pipfile.lock: the top level is not an object")
        return None
    lines = _package_lines(text)
    for section, group in SECTIONS.items():
        packages = document.get(section, {})
        if not isinstance(packages, dict):
            reader.problems.append(PinProblem(rel, 0, "", f'"{section}" is not an object'))
            continue
        for name, entry in packages.items():
            line = lines.get((section, name), 0)
            _read_entry(reader, rel, line, name, entry, group)
    meta = document.get("_meta", {})
    requires = meta.get("requires", {}) if isinstance(meta, dict) else {}
    python = requires.get("python_version") if isinstance(requires, dict) else None
    return python if isinstance(python, str) else None


def _read_entry(
    reader: Collector, rel: str, line: int, name: str, entry: Any, group: str | None
) -> None:
    if not isinstance(entry, dict):
        reader.problems.append(PinProblem(rel, line, name, f"{name}: not an object"))
        return
    where = next((key for key in ("git", "path", "file", "editable") if key in entry), None)
    version = entry.get("version")
    if where is not None or not isinstance(version, str):
        reader.problems.append(
            PinProblem(rel, line, name, f"{NOT_REGISTRY} (installed from {where or 'no version'})")
        )
        return
    markers = entry.get("markers")
    pin = locked_pin(
        name,
        version.removeprefix("=="),
        rel,
        line,
        marker=markers if isinstance(markers, str) else None,
        group=group,
        hashes=tuple(str(value) for value in entry.get("hashes", ()) if isinstance(value, str)),
    )
    if pin is None:
        reader.problems.append(PinProblem(rel, line, name, f"{name}: unusable version {version}"))
        return
    reader.pins.append(pin)


def _package_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, package) -> 1-based line of ``"package": {`` as pipenv writes it."""
    found: dict[tuple[str, str], int] = {}
    section: str | None = None
    section_indent = -1
    for number, line in enumerate(text.splitlines(), start=1):
        match = _KEY.match(line)
        if match is None:
            continue
        indent, key = len(match.group(1)), match.group(2)
        if key in SECTIONS or key == "_meta":
            section, section_indent = key, indent
        elif section in SECTIONS and indent > section_indent:
            found.setdefault((section, key), number)
    return found


def edit_pipfile_lock(text: str, changes: Mapping[NormalizedName, str]) -> Rewrite:
    """Set ``"version": "==NEW"`` and empty ``"hashes"`` of the named packages (pure)."""
    lines = text.splitlines(keepends=True)
    located = _package_lines(text)
    changed: list[PinChange] = []
    notes: list[RewriteNote] = []
    drop: set[int] = set()
    for (_, key), number in sorted(located.items(), key=lambda item: item[1]):
        name = canonicalize_name(key)
        if name not in changes:
            continue
        start = number - 1
        end = _object_end(lines, start)
        old = _edit_object(lines, start, end, changes[name], drop)
        if old is None:
            continue
        changed.append(PinChange(name, number, f"=={old}", f"=={changes[name]}"))
        notes.append(
            RewriteNote(
                name,
                number,
                "lock-edited",
                f"{name} was moved in place; run `pipenv lock` to record the hashes of "
                f"{changes[name]}",
            )
        )
    new_text = "".join(line for index, line in enumerate(lines) if index not in drop)
    return Rewrite(new_text, tuple(changed), tuple(notes))


def _object_end(lines: list[str], start: int) -> int:
    indent = len(lines[start]) - len(lines[start].lstrip())
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped in ("}", "},") and len(lines[index]) - len(lines[index].lstrip()) == indent:
            return index
    return len(lines)


_VERSION = re.compile(r'^(\s*"version"\s*:\s*"==)([^"]+)(".*)$', re.DOTALL)
_HASHES = re.compile(r'^(\s*"hashes"\s*:\s*\[)')


def _edit_object(lines: list[str], start: int, end: int, new: str, drop: set[int]) -> str | None:
    old = None
    for index in range(start + 1, end):
        version = _VERSION.match(lines[index])
        if version is not None and version.group(2) != new:
            old = version.group(2)
            lines[index] = version.group(1) + new + version.group(3)
    if old is None:
        return None
    for index in range(start + 1, end):
        hashes = _HASHES.match(lines[index])
        if hashes is None or lines[index].rstrip().endswith(("[]", "[],")):
            continue
        close = next(i for i in range(index + 1, end + 1) if lines[i].strip().startswith("]"))
        tail = lines[close].strip()[1:]  # "," or ""
        ending = lines[close][len(lines[close].rstrip("\r\n")) :]
        lines[index] = hashes.group(1) + "]" + tail + ending
        drop.update(range(index + 1, close + 1))
    return old


def read_pipfile(reader: Collector, path: Path) -> None:
    """The Pipfile's requirements as the intent: ``"*"``, ``"==1.0"`` or tables with version."""
    text = reader.text(path)
    if text is None:
        return
    rel = relative(reader.root, path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        reader.broken(rel, int(match.group(1)) if match else 0, f"not valid TOML: {error}")
        return
    for table, group in (("packages", None), ("dev-packages", "dev-packages")):
        entries = document.get(table, {})
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            line = _key_line(text, table, name)
            specifier = value if isinstance(value, str) else (value or {}).get("version", "*")
            if not isinstance(specifier, str) or (
                isinstance(value, dict) and "version" not in value
            ):
                reader.problems.append(
                    PinProblem(rel, line, name, f"{NOT_REGISTRY} (not from an index)")
                )
                continue
            requirement_text = name + ("" if specifier.strip() == "*" else specifier)
            try:
                requirement = Requirement(requirement_text)
            except InvalidRequirement as error:
                reader.problems.append(PinProblem(rel, line, name, str(error).splitlines()[0]))
                continue
            reader.pins.append(make_pin(requirement, rel, line, requirement_text, group=group))


def _key_line(text: str, table: str, name: str) -> int:
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[] ")
        elif current == table and re.match(rf'^["\']?{re.escape(name)}["\']?\s*=', stripped):
            return number
    return 0


_PIPFILE_ENTRY = re.compile(
    r"""^(?P<lead>\s*["']?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)["']?\s*=\s*"""
    r"""(?:\{[^}]*?version\s*=\s*)?(?P<quote>["']))(?P<spec>[^"']*)(?P=quote)"""
)


def rewrite_pipfile(
    text: str, wanted: Mapping[NormalizedName, str], pin_ranges: bool
) -> tuple[str, list[PinChange], list[RewriteNote], set[NormalizedName]]:
    """Change exact versions in ``[packages]``/``[dev-packages]``, every other byte kept."""
    from specfleet.core.health.pins.single import rewrite_requirement  # one user

    lines = text.splitlines(keepends=True)
    changed: list[PinChange] = []
    notes: list[RewriteNote] = []
    found: set[NormalizedName] = set()
    table = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[] ")
            continue
        match = _PIPFILE_ENTRY.match(line)
        if table not in ("packages", "dev-packages") or match is None:
            continue
        name = canonicalize_name(match.group("name"))
        if name not in wanted:
            continue
        found.add(name)
        spec = match.group("spec").strip()
        raw = match.group("name") + ("" if spec == "*" else spec)
        outcome = rewrite_requirement(raw, name, index + 1, wanted[name], pin_ranges)
        if isinstance(outcome, RewriteNote):
            notes.append(outcome)
            continue
        new_spec = outcome.requirement[len(match.group("name")) :]
        start, end = match.span("spec")
        lines[index] = line[:start] + new_spec + line[end:]
        changed.append(PinChange(name, index + 1, outcome.old, outcome.new))
    return "".join(lines), changed, notes, found
