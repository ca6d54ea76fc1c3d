"""Rewriting the version of one PEP 508 requirement string, shared by every format that
declares requirements as strings (requirements files, pyproject.toml)."""

from __future__ import annotations

from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from specfleet.core.health import depfiles
from specfleet.core.health.pins.model import RewriteNote


class _Edit(NamedTuple):
    requirement: str  # the new requirement text
    old: str
    new: str


def rewrite_requirement(
    raw: str, name: NormalizedName, line: int, version: str, pin_ranges: bool
) -> _Edit | RewriteNote:
    """The new text of one requirement string, or a note saying why it stays."""
    requirement = Requirement(raw)
    old = str(requirement.specifier)
    clauses = list(requirement.specifier)
    exact = (
        len(clauses) == 1 and clauses[0].operator in ("==", "===") and "*" not in clauses[0].version
    )
    arbitrary = exact and clauses[0].operator == "==="
    if not arbitrary:
        try:
            Version(version)
        except InvalidVersion:
            return RewriteNote(
                name, line, "invalid-version", f"{version!r} is not a valid version for {name}"
            )
    if exact:
        if clauses[0].version == version:
            return RewriteNote(name, line, "already-pinned", f"{name} is already {old}")
        new_text = depfiles.replace_exact_version(raw, version)
        expected = f"{clauses[0].operator}{version}"
    elif pin_ranges:
        new_text = depfiles.replace_specifier(raw, f"=={version}")
        expected = f"=={version}"
    else:
        admits = requirement.specifier.contains(version, prereleases=True)
        declared = old or "no version constraint"
        if admits:
            return RewriteNote(
                name, line, "range-admits", f"{name} {declared} admits {version}; left as declared"
            )
        return RewriteNote(
            name,
            line,
            "range-excludes",
            f"{name} {declared} does not admit {version}; left as declared",
        )
    if new_text is None or not _same_but_specifier(requirement, new_text, expected):
        return RewriteNote(
            name, line, "not-rewritable", f"{name}: the requirement {raw!r} cannot be rewritten"
        )
    return _Edit(new_text, old, expected)


def _same_but_specifier(before: Requirement, text: str, specifier: str) -> bool:
    """The rewritten requirement differs from the original in its specifier only."""
    try:
        after = Requirement(text)
    except InvalidRequirement:
        return False
    return (
        canonicalize_name(after.name) == canonicalize_name(before.name)
        and after.extras == before.extras
        and str(after.marker) == str(before.marker)
        and str(after.specifier) == specifier
    )
