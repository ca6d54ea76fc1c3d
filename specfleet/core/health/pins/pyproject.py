"""PEP 621 ``pyproject.toml``: ``[project.dependencies]`` and every
``[project.optional-dependencies]`` group (a pin's ``group`` names it), read with their lines
and rewritten string by string, quotes, comments and spacing kept."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.health import depfiles
from specfleet.core.health.pins.model import (
    Collector,
    PinChange,
    PinProblem,
    RewriteNote,
    make_pin,
    relative,
)
from specfleet.core.health.pins.single import rewrite_requirement


def read_pyproject(reader: Collector, path: Path, *, project_required: bool = True) -> None:
    """Add the pins of a PEP 621 pyproject.toml to ``reader``."""
    text = reader.text(path)
    if text is None:
        return
    rel = relative(reader.root, path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        line = int(match.group(1)) if match else 0
        reader.broken(rel, line, f"not valid TOML: {error}")
        return
    project = document.get("project")
    if not isinstance(project, dict):
        if project_required:  # beside a poetry.lock, [tool.poetry] may declare them instead
            reader.problems.append(PinProblem(rel, 0, "", "there is no [project] table"))
        return
    located = _pyproject_strings(text)
    self_name = canonicalize_name(str(project.get("name", "")))
    groups: list[tuple[str | None, object]] = []
    if "dependencies" in project:
        groups.append((None, project["dependencies"]))
    elif "dependencies" in project.get("dynamic", ()):
        reader.problems.append(
            PinProblem(
                rel, 0, "", "[project] dependencies are dynamic; name the file they come from"
            )
        )
    optional = project.get("optional-dependencies", {})
    if isinstance(optional, dict):
        groups.extend((str(name), values) for name, values in optional.items())
    for group, values in groups:
        where = "dependencies" if group is None else f"optional-dependencies.{group}"
        if not isinstance(values, list):
            reader.problems.append(PinProblem(rel, 0, "", f"[project] {where} is not a list"))
            continue
        key = _pyproject_key(group)
        for index, value in enumerate(values):
            line = _toml_line(located, key, index, value, text)
            if not isinstance(value, str):
                reader.problems.append(
                    PinProblem(rel, line, str(value), f"an entry of {where} is not a string")
                )
                continue
            _pyproject_entry(reader, rel, line, value, group, self_name)


def _pyproject_entry(
    reader: Collector, rel: str, line: int, value: str, group: str | None, self_name: str
) -> None:
    requirement = reader.registry_requirement(rel, line, value, value)
    if requirement is None:
        return
    if canonicalize_name(requirement.name) == self_name:
        return  # "product[test]" inside its own extras refers back to the project itself
    reader.pins.append(make_pin(requirement, rel, line, value, group=group))


def _pyproject_key(group: str | None) -> tuple[str, ...]:
    if group is None:
        return ("project", "dependencies")
    return ("project", "optional-dependencies", group)


def _pyproject_strings(text: str) -> dict[tuple[str, ...], list[depfiles.TomlString]]:
    by_key: dict[tuple[str, ...], list[depfiles.TomlString]] = {}
    for literal in depfiles.toml_array_strings(text):
        by_key.setdefault(literal.key, []).append(literal)
    return by_key


def _toml_line(
    located: dict[tuple[str, ...], list[depfiles.TomlString]],
    key: tuple[str, ...],
    index: int,
    value: object,
    text: str,
) -> int:
    literals = located.get(key, [])
    if index < len(literals) and literals[index].value == value:
        return literals[index].line
    # layouts the scanner does not follow (inline tables): the first line holding the text
    if isinstance(value, str):
        for number, content in enumerate(text.splitlines(), start=1):
            if value in content:
                return number
    return 0


def rewrite_pyproject(
    text: str, wanted: dict[NormalizedName, str], pin_ranges: bool
) -> tuple[str, list[PinChange], list[RewriteNote], set[NormalizedName]]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text, [], [], set()
    project = document.get("project")
    expected: dict[tuple[str, ...], list[object]] = {}
    if isinstance(project, dict):
        if isinstance(project.get("dependencies"), list):
            expected[_pyproject_key(None)] = project["dependencies"]
        optional = project.get("optional-dependencies")
        if isinstance(optional, dict):
            for group, values in optional.items():
                if isinstance(values, list):
                    expected[_pyproject_key(str(group))] = values
    located = _pyproject_strings(text)
    edits: list[tuple[depfiles.TomlString, str]] = []
    changed: list[PinChange] = []
    notes: list[RewriteNote] = []
    found: set[NormalizedName] = set()
    for key, values in expected.items():
        literals = located.get(key, [])
        in_step = [literal.value for literal in literals] == values
        for index, value in enumerate(values):
            if not isinstance(value, str):
                continue
            try:
                requirement = Requirement(value)
            except InvalidRequirement:
                continue
            name = canonicalize_name(requirement.name)
            if name not in wanted or requirement.url:
                continue
            found.add(name)
            line = literals[index].line if in_step else _toml_line(located, key, index, value, text)
            outcome = rewrite_requirement(value, name, line, wanted[name], pin_ranges)
            if isinstance(outcome, RewriteNote):
                notes.append(outcome)
                continue
            if not in_step or not literals[index].plain:
                notes.append(
                    RewriteNote(
                        name,
                        line,
                        "not-rewritable",
                        f"{name}: the string {value!r} is written in a form that cannot be "
                        "rewritten in place",
                    )
                )
                continue
            edits.append((literals[index], outcome.requirement))
            changed.append(PinChange(name, line, outcome.old, outcome.new))
    new_text = text
    for literal, new_requirement in sorted(edits, key=lambda edit: edit[0].start, reverse=True):
        quoted = literal.quote + new_requirement + literal.quote
        new_text = new_text[: literal.start] + quoted + new_text[literal.end :]
    return new_text, changed, notes, found


def requires_python(text: str) -> str | None:
    """``[project] requires-python`` of a pyproject's text, when it states one."""
    try:
        project = tomllib.loads(text).get("project")
    except tomllib.TOMLDecodeError:
        return None
    value = project.get("requires-python") if isinstance(project, dict) else None
    return value if isinstance(value, str) else None
