"""Load ``dataproduct.yaml`` and report every problem with its file, line, column and field.

The generic work (size, encoding, YAML syntax, duplicate keys, located pydantic errors with
did-you-mean) is :func:`specfleet.core.yamldoc.check_yaml`; this adds the spec's cross-field rules
(:mod:`specfleet.core.spec.rules`) and the spec's size limit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from specfleet.core.errors import InputError, SpecInvalid
from specfleet.core.spec.model import Spec
from specfleet.core.spec.problems import Problem
from specfleet.core.spec.rules import cross_field_problems
from specfleet.core.yamldoc import check_yaml
from specfleet.core.yamldoc import oversize_problem as _oversize

MAX_SPEC_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SpecCheck:
    """The outcome of checking a spec: the spec when valid, otherwise the problems."""

    source: str
    spec: Spec | None
    problems: tuple[Problem, ...]
    content_hash: str

    @property
    def valid(self) -> bool:
        return self.spec is not None and not self.problems


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_spec_bytes(data: bytes, source: str) -> SpecCheck:
    """Check raw spec bytes; pure (no I/O), so it serves files, git blobs and web forms alike."""
    checked = check_yaml(
        data,
        source,
        Spec,
        max_bytes=MAX_SPEC_BYTES,
        cross_field=cross_field_problems,
        what="a mapping of spec sections",
    )
    return SpecCheck(source, checked.value, checked.problems, content_hash(data))


def oversize_problem(source: str, size: int) -> Problem:
    return _oversize(source, size, MAX_SPEC_BYTES)


def read_spec_file(path: Path) -> bytes:
    """Read a spec file, refusing oversized ones before reading them; I/O errors -> InputError."""
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecInvalid(str(path), [oversize_problem(str(path), size)])
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a dataproduct.yaml file")
        return path.read_bytes()
    except FileNotFoundError as error:
        raise InputError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise InputError(f"{path}: is a directory, not a dataproduct.yaml file") from error
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from error


def check_spec_file(path: Path) -> SpecCheck:
    """Check a spec file on disk; I/O errors raise :class:`InputError`, problems are values."""
    try:
        data = read_spec_file(path)
    except SpecInvalid as invalid:
        return SpecCheck(str(path), None, tuple(invalid.problems), "")
    return check_spec_bytes(data, str(path))


def load_spec(path: Path) -> Spec:
    """Load a valid spec or raise :class:`SpecInvalid` carrying every problem."""
    check = check_spec_file(path)
    if check.spec is None:
        raise SpecInvalid(check.source, check.problems)
    return check.spec
