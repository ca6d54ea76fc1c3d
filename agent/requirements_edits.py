"""Requirements files a plan edits are parsed with pip's grammar, never grepped.

A requirements file decides where packages come from, not only which versions: an added
``--extra-index-url``, ``-i``, ``--trusted-host``, ``-c https://...``, ``-r ../elsewhere.txt``,
``pkg @ git+https://...`` or a direct wheel URL would let a plan install code from anywhere.
So every logical line (continuations joined, comments dropped, as pip reads it) that a plan
adds or removes must be a plain ``name==version`` requirement, optionally with extras,
an environment marker and ``--hash`` options; anything else is refused with its line number.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement

from specfleet.core.health.depfiles import (
    OptionSyntaxError,
    logical_lines,
    looks_like_path_or_url,
    parse_options,
    physical_lines,
    split_arguments,
)


def is_requirements_file(path: str) -> bool:
    """pip requirements and constraints files, by the names people give them."""
    pure = PurePosixPath(path.lower())
    if pure.suffix not in (".txt", ".in"):
        return False
    in_folder = any(part in ("requirements", "constraints") for part in pure.parts[:-1])
    return in_folder or "requirements" in pure.name or "constraints" in pure.name


def pinned_line_problem(text: str) -> str | None:
    """Why one logical line is not a plain ``name==version`` pin (None: it is)."""
    requirement, options = split_arguments(text)
    if not requirement:
        return "option lines (index, constraint, include, find-links ...) may not be changed"
    try:
        for option in parse_options(options, after_requirement=True):
            if option.name != "--hash":
                return f"only --hash may follow a requirement, not {option.name}"
    except OptionSyntaxError as error:
        return str(error)
    if looks_like_path_or_url(requirement):
        return "URL, path and archive requirements change where a package comes from"
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement as error:
        return f"not a valid requirement ({error})"
    if parsed.url:
        return "URL requirements (name @ url) change where a package comes from"
    clauses = list(parsed.specifier)
    if len(clauses) != 1 or clauses[0].operator != "==" or "*" in clauses[0].version:
        return "only exact pins (name==version) may be added or changed"
    return None


def requirements_problem(path: str, old: str | None, new: str | None) -> str | None:
    """The first changed line of a requirements file that is not a plain pin, named by line."""
    before = Counter(line.text for line in logical_lines(physical_lines(old or "")))
    removed = before.copy()
    added = []
    for line in logical_lines(physical_lines(new or "")):
        if removed[line.text] > 0:
            removed[line.text] -= 1
        else:
            added.append(line)
    for line in added:
        reason = pinned_line_problem(line.text)
        if reason is not None:
            return f"{path} line {line.number} ({line.text[:80]!r}): {reason}"
    for text, count in removed.items():
        if count > 0 and split_arguments(text)[0] == "":
            return f"{path}: the option line {text[:80]!r} may not be removed"
    return None
