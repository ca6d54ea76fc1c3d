"""Reading the pins of the dependency file a spec names (or a checkout has), whatever its
format: a lock's pins are what gets installed, the declaring file beside it is the intent."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from specfleet.core.errors import DependencyFileError
from specfleet.core.health.pins.compile import lock_header
from specfleet.core.health.pins.formats import LockKind, lock_beside, lock_kind
from specfleet.core.health.pins.model import (
    Collector,
    PinProblem,
    PinSet,
    decode,
    inside,
    relative,
    unique,
)
from specfleet.core.health.pins.pipfile import read_pipfile
from specfleet.core.health.pins.pyproject import read_pyproject, requires_python
from specfleet.core.health.pins.requirements import RequirementsReader, compiled_pair


def read_pins(repo: Path, dependencies: str) -> PinSet:
    """Read the pins of the dependency file a spec names (repository-relative).

    Raises :class:`DependencyFileError` when the path leaves the repository or the file does
    not exist; everything wrong inside the files is a :class:`PinProblem`.
    """
    root = repo.resolve()
    path = inside(root, dependencies)
    if path is None:
        raise DependencyFileError(
            f"{dependencies}: the dependency file must be inside the repository"
        )
    if not path.is_file():
        raise DependencyFileError(
            f"{dependencies}: no such file (named by implementation.dependencies)"
        )
    kind = lock_kind(path.name)
    beside = lock_beside(path) if kind is None else None
    if beside is not None:
        kind, path = lock_kind(beside.name), beside
    if kind is not None:
        return _read_lock(root, path, kind)
    if path.name == "Pipfile":
        reader = Collector(root)
        read_pipfile(reader, path)
        return reader.result()
    if path.name == "pyproject.toml" or path.suffix == ".toml":
        reader = Collector(root)
        read_pyproject(reader, path)
        target = requires_python(decode(path.read_bytes()) or "")
        return replace(reader.result(), python_target=python_floor(target))
    return _read_requirements(root, path)


def _read_lock(root: Path, lock_path: Path, kind: LockKind) -> PinSet:
    intent = Collector(root)
    target = None
    if kind.intent is not None and (lock_path.parent / kind.intent).is_file():
        intent_path = lock_path.parent / kind.intent
        if kind.intent == "Pipfile":
            read_pipfile(intent, intent_path)
        else:
            read_pyproject(intent, intent_path, project_required=kind.format == "uv.lock")
            target = requires_python(decode(intent_path.read_bytes()) or "")
    lock = Collector(root)
    lock_target = kind.read(lock, lock_path)
    declared, locked = intent.result(), lock.result()
    return PinSet(
        pins=locked.pins,
        problems=declared.problems + locked.problems,
        files=declared.files + locked.files,
        lock=relative(root, lock_path),
        intent=declared.pins,
        lock_format=kind.format,
        unreadable=declared.unreadable + locked.unreadable,
        python_target=python_floor(lock_target or target),
    )


def _read_requirements(root: Path, path: Path) -> PinSet:
    rel = relative(root, path)
    intent_path, lock_path = compiled_pair(path)
    if intent_path is None:
        reader = RequirementsReader(root)
        reader.requirements(path, constraint=False, stack=())
        return reader.result()
    intent = RequirementsReader(root)
    intent.requirements(intent_path, constraint=False, stack=())
    if lock_path is None or not lock_path.is_file():
        missing = relative(root, intent_path.with_suffix(".txt"))
        intent.problems.append(
            PinProblem(
                missing,
                0,
                "",
                f"the compiled lock {missing} of {rel} is missing; pins are read from the .in",
            )
        )
        result = intent.result()
        return replace(result, intent=result.pins)
    lock = RequirementsReader(root)
    lock.requirements(lock_path, constraint=False, stack=())
    lock_result = lock.result()
    intent_result = intent.result()
    header = lock_header(decode(lock_path.read_bytes()) or "")
    return PinSet(
        pins=lock_result.pins,
        problems=intent_result.problems + lock_result.problems,
        files=intent_result.files + lock_result.files,
        lock=relative(root, lock_path),
        intent=intent_result.pins,
        constraints=intent_result.constraints + lock_result.constraints,
        indexes=unique(intent_result.indexes + lock_result.indexes),
        lock_format="requirements",
        unreadable=intent_result.unreadable + lock_result.unreadable,
        python_target=header.python,
    )


_FLOOR = re.compile(r"(?:>=|\^|~=|~|==)\s*(\d+)\.(\d+)")
_BARE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\*)?\s*$")


def python_floor(requirement: str | None) -> str | None:
    """The lowest Python a requires-python-like text admits: ">=3.8,<4" -> "3.8"; "3.9" -> "3.9"."""
    if not requirement:
        return None
    match = _FLOOR.search(requirement) or _BARE.match(requirement)
    return f"{match.group(1)}.{match.group(2)}" if match else None
