"""``uv.lock``: every registry package uv resolved, read with its line; moved either by uv
itself (``uv lock --upgrade-package NAME==VERSION``) or, without uv, by an in-place edit.

The project's own entry (``source = { editable = "." }`` or ``virtual``) is the product, not
a pin; a package from git, a path or a URL is a problem "not a registry requirement". uv.lock
resolves for every Python its ``requires-python`` admits, so that is the product's target.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.errors import DependencyFileError
from specfleet.core.health.pins import blocks
from specfleet.core.health.pins.model import (
    NOT_REGISTRY,
    Collector,
    PinChange,
    PinProblem,
    Rewrite,
    RewriteNote,
    locked_pin,
    relative,
)

_PROJECT_SOURCES = ("editable", "virtual")


def read_uv_lock(reader: Collector, path: Path) -> str | None:
    """Add the lock's registry packages to ``reader``; return its ``requires-python``."""
    text = reader.text(path)
    if text is None:
        return None
    rel = relative(reader.root, path)
    document = load_toml(reader, rel, text)
    if document is None:
        return None
    packages = document.get("package", [])
    lines = text.splitlines()
    located = blocks.package_blocks(lines)
    if not isinstance(packages, list) or len(located) != len(packages):
        reader.broken(rel, 0, "the [[package]] tables are not laid out as uv writes them")
        return None
    for block, package in zip(located, packages, strict=True):
        _read_package(reader, rel, block, package)
    requires = document.get("requires-python")
    return requires if isinstance(requires, str) else None


def _read_package(reader: Collector, rel: str, block: blocks.Block, package: Any) -> None:
    line = block.name_line + 1 if block.name_line >= 0 else block.start + 1
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        reader.problems.append(PinProblem(rel, line, "", "a [[package]] without a name"))
        return
    name, version = package["name"], package.get("version")
    source = package.get("source", {})
    kind = next(iter(source), "registry") if isinstance(source, dict) else "registry"
    if kind in _PROJECT_SOURCES:
        return  # the product itself
    if kind != "registry":
        reader.problems.append(
            PinProblem(rel, line, name, f"{NOT_REGISTRY} (installed from {kind})")
        )
        return
    forks = package.get("resolution-markers")
    # one version per Python fork: the fork's markers say where each applies
    marker = " or ".join(f"({m})" for m in forks) if isinstance(forks, list) and forks else None
    pin = locked_pin(name, str(version), rel, line, marker=marker) if version is not None else None
    if pin is None:
        reader.problems.append(PinProblem(rel, line, name, f"{name} has no usable version"))
        return
    reader.pins.append(pin)


def load_toml(reader: Collector, rel: str, text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        reader.broken(rel, int(match.group(1)) if match else 0, f"not valid TOML: {error}")
        return None


def edit_uv_lock(text: str, changes: Mapping[NormalizedName, str]) -> Rewrite:
    """Move the named packages in place: version, references to it and its requires-dist.

    The files of a moved package (``sdist``, ``wheels``) carry hashes of the old release, so
    they are removed and the result says to run ``uv lock``; nothing else changes.
    """
    return edit_toml_lock(text, changes, drop_keys=("sdist", "wheels"), relock="uv lock")


def edit_toml_lock(
    text: str, changes: Mapping[NormalizedName, str], *, drop_keys: tuple[str, ...], relock: str
) -> Rewrite:
    """The in-place edit shared by uv.lock and poetry.lock (pure)."""
    lines = text.splitlines(keepends=True)
    changed: list[PinChange] = []
    notes: list[RewriteNote] = []
    removed: set[int] = set()
    moved: dict[str, tuple[str, str]] = {}  # name -> (old, new)
    for block in blocks.package_blocks([line.rstrip("\r\n") for line in lines]):
        if block.name_line < 0:
            continue
        name = canonicalize_name(blocks.string_value(lines[block.name_line], "name") or "")
        if name not in changes:
            continue
        version_line = blocks.top_level_key_line(lines, block, "version")
        old = blocks.string_value(lines[version_line], "version") if version_line >= 0 else None
        if old is None or old == changes[name]:
            continue
        lines[version_line] = blocks.set_string(lines[version_line], "version", changes[name])
        for key in drop_keys:
            first = blocks.top_level_key_line(lines, block, key)
            if first >= 0:
                removed.update(range(first, blocks.value_span(lines, first)))
        moved[name] = (old, changes[name])
        changed.append(PinChange(name, block.name_line + 1, f"=={old}", f"=={changes[name]}"))
        notes.append(
            RewriteNote(
                name,
                block.name_line + 1,
                "lock-edited",
                f"{name} was moved in place; run `{relock}` to record the files and hashes "
                f"of {changes[name]}",
            )
        )
    out = [_references(line, moved) for index, line in enumerate(lines) if index not in removed]
    return Rewrite("".join(out), tuple(changed), tuple(notes))


def _references(line: str, moved: Mapping[str, tuple[str, str]]) -> str:
    """Other packages' references pinned to a moved version (uv writes them for forks)."""
    for name, (old, new) in moved.items():
        pattern = re.compile(
            rf'(\{{\s*name\s*=\s*"{re.escape(name)}"\s*,\s*(?:version|specifier)\s*=\s*"(?:==)?)'
            rf'{re.escape(old)}(")'
        )
        line = pattern.sub(_keep_around(new), line)
    return line


def _keep_around(new: str) -> Callable[[re.Match[str]], str]:
    def substitute(match: re.Match[str]) -> str:
        return match.group(1) + new + match.group(2)

    return substitute


def uv_lock_command(uv: Path, changes: Mapping[NormalizedName, str]) -> list[str]:
    arguments = [str(uv), "lock", "--quiet"]
    for name, version in changes.items():
        arguments += ["--upgrade-package", f"{name}=={version}"]
    return arguments


def run_uv_lock(
    uv: Path, lock_path: Path, changes: Mapping[NormalizedName, str], timeout: float
) -> bytes:
    """Run uv's own lock in the project and return the new uv.lock's bytes.

    uv writes uv.lock in place; the caller keeps the original to put back on any failure.
    """
    try:
        result = subprocess.run(
            uv_lock_command(uv, changes),
            cwd=lock_path.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DependencyFileError(f"{lock_path.name}: uv lock failed: {error}") from error
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
        raise DependencyFileError(f"{lock_path.name}: uv lock failed: {detail}")
    return lock_path.read_bytes()
