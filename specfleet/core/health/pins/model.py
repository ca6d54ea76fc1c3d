"""The pin types every dependency format reads into and every rewrite reports with.

Value types and small helpers only: no format's syntax lives here (see the sibling modules,
one per format) and nothing here touches the disk except :func:`read_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name

FileKind = Literal["requirements", "pyproject", "pipfile"]
# the lock formats whose pins are what gets installed; "requirements" is a compiled .txt
LockFormat = Literal["requirements", "uv.lock", "poetry.lock", "Pipfile.lock"]
NOT_REGISTRY = "not a registry requirement"


@dataclass(frozen=True)
class Pin:
    """One declared dependency, located in its file so it can be reported and rewritten."""

    name: NormalizedName  # canonical (packaging.utils.canonicalize_name)
    specifier: SpecifierSet  # as declared, e.g. ==1.5.3 or >=2,<3
    file: str  # path relative to the repository root
    line: int  # 1-based line of the requirement in that file
    extras: tuple[str, ...] = ()
    marker: str | None = None  # environment marker text, e.g. python_version < "3.12"
    raw: str = ""  # the requirement as written, without comments or options
    hashes: tuple[str, ...] = ()  # --hash values, e.g. sha256:…; a rewrite must drop them
    group: str | None = None  # the pyproject optional-dependencies group, None for the main list

    @property
    def version(self) -> str | None:
        """The exact version when pinned with == (no wildcard) or ===, else None."""
        specs = list(self.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
            return specs[0].version
        return None


@dataclass(frozen=True)
class PinProblem:
    """A requirement that could not be understood, reported per line; the rest still count."""

    file: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class PinSet:
    """Everything read from a product's dependency files."""

    pins: tuple[Pin, ...]  # what gets installed: the compiled lock's pins when there is one
    problems: tuple[PinProblem, ...]
    files: tuple[str, ...]  # every file read, repository-relative, in reading order
    lock: str | None = None  # the lock whose pins are installed (compiled .txt, uv.lock, ...)
    intent: tuple[Pin, ...] = ()  # the declared requirements (.in, pyproject, Pipfile) of a lock
    constraints: tuple[Pin, ...] = ()  # -c lines: they bound versions, install nothing
    indexes: tuple[str, ...] = ()  # --index-url/--extra-index-url/--find-links, no credentials
    lock_format: LockFormat | None = None  # the format of ``lock``
    unreadable: tuple[str, ...] = ()  # files that could not be parsed: never rewritten
    python_target: str | None = None  # "3.8": what the files say the product runs on

    @property
    def direct(self) -> frozenset[NormalizedName]:
        """Names the product asks for itself (the .in's when compiled, else every pin's)."""
        return frozenset(pin.name for pin in (self.intent or self.pins))

    def named(self, name: str) -> tuple[Pin, ...]:
        """The pins of one package (several when markers split it by platform)."""
        wanted = canonicalize_name(name)
        return tuple(pin for pin in self.pins if pin.name == wanted)


class PinChange(NamedTuple):
    """One requirement a rewrite changed: its specifier before and after."""

    name: NormalizedName
    line: int
    old: str
    new: str


NoteKind = Literal[
    "hashes-dropped",  # the hashes no longer match: the lock must be regenerated
    "range-admits",  # a range already admits the version: left as declared
    "range-excludes",  # a range does not admit the version: left as declared, not applied
    "already-pinned",  # the pin already names the version
    "not-declared",  # no requirement of that name in the file (or in any file, in a plan)
    "not-rewritable",  # the requirement is written in a way a rewrite cannot touch safely
    "invalid-version",  # the requested version is not a PEP 440 version
    "lock-edited",  # a lock was edited in place: its file hashes must be regenerated
    "unreadable",  # the file could not be parsed, so it is not rewritten
]


@dataclass(frozen=True)
class RewriteNote:
    """Why a requested change was not made as asked, or what else it implies."""

    name: NormalizedName
    line: int  # 0 when the note is about no particular line
    kind: NoteKind
    message: str
    file: str | None = None  # set when the note comes from a multi-file plan


@dataclass(frozen=True)
class Rewrite:
    """The outcome of rewriting one file's text."""

    text: str
    changed: tuple[PinChange, ...]
    notes: tuple[RewriteNote, ...] = ()

    @property
    def lock_stale(self) -> bool:
        """True when hashes were dropped, so the file must be recompiled before pip accepts it."""
        return any(note.kind == "hashes-dropped" for note in self.notes)


def inside(root: Path, relative: str, *, base: Path | None = None) -> Path | None:
    """The resolved path when it stays inside ``root`` (symlinks followed), else None."""
    if Path(relative).is_absolute() or relative.startswith("~"):
        return None
    target = ((base or root) / relative).resolve()
    return target if target.is_relative_to(root) else None


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def first_line(message: str) -> str:
    return message.splitlines()[0] if message else "cannot be parsed"


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def without_credentials(url: str) -> str:
    """Index URLs often carry tokens (https://user:token@host); reports must not."""
    return _CREDENTIALS.sub("", url)


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def make_pin(
    requirement: Requirement,
    file: str,
    line: int,
    raw: str,
    *,
    hashes: tuple[str, ...] = (),
    group: str | None = None,
) -> Pin:
    return Pin(
        name=canonicalize_name(requirement.name),
        specifier=requirement.specifier,
        file=file,
        line=line,
        extras=tuple(sorted(canonicalize_name(extra) for extra in requirement.extras)),
        marker=str(requirement.marker) if requirement.marker is not None else None,
        raw=raw,
        hashes=hashes,
        group=group,
    )


def locked_pin(
    name: str,
    version: str,
    file: str,
    line: int,
    *,
    marker: str | None = None,
    group: str | None = None,
    hashes: tuple[str, ...] = (),
) -> Pin | None:
    """A lock entry as a pin (name==version), or None when the pair is not a requirement."""
    try:
        requirement = Requirement(f"{name}=={version}")
    except InvalidRequirement:
        return None
    return replace_marker(
        make_pin(requirement, file, line, f"{name}=={version}", hashes=hashes, group=group), marker
    )


def replace_marker(pin: Pin, marker: str | None) -> Pin:
    if not marker:
        return pin
    return Pin(
        pin.name,
        pin.specifier,
        pin.file,
        pin.line,
        pin.extras,
        marker,
        pin.raw,
        pin.hashes,
        pin.group,
    )


class Collector:
    """Accumulates what reading one or more files finds (shared by every format's reader)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pins: list[Pin] = []
        self.constraints: list[Pin] = []
        self.problems: list[PinProblem] = []
        self.files: list[str] = []
        self.indexes: list[str] = []
        self.unreadable: list[str] = []
        self.seen: set[Path] = set()

    def result(self) -> PinSet:
        return PinSet(
            pins=tuple(self.pins),
            problems=tuple(self.problems),
            files=tuple(self.files),
            constraints=tuple(self.constraints),
            indexes=unique(self.indexes),
            unreadable=tuple(self.unreadable),
        )

    def text(self, path: Path) -> str | None:
        """The file's text, recorded as read; None (with a problem) when it cannot be."""
        rel = relative(self.root, path)
        self.seen.add(path)
        self.files.append(rel)
        try:
            data = path.read_bytes()
        except OSError as error:
            self.problems.append(
                PinProblem(rel, 0, "", f"cannot be read ({error.strerror or error})")
            )
            self.unreadable.append(rel)
            return None
        text = decode(data)
        if text is None:
            self.problems.append(PinProblem(rel, 0, "", "the file is not UTF-8 text"))
            self.unreadable.append(rel)
        return text

    def broken(self, rel: str, line: int, reason: str) -> None:
        """The whole file cannot be parsed: reported by line, never rewritten."""
        self.problems.append(PinProblem(rel, line, "", reason))
        self.unreadable.append(rel)

    def registry_requirement(
        self, rel: str, line: int, requirement_text: str, shown: str
    ) -> Requirement | None:
        """Parse a requirement from the index; anything else is recorded as a problem."""
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as error:
            self.problems.append(PinProblem(rel, line, shown, first_line(str(error))))
            return None
        if requirement.url:
            self.problems.append(
                PinProblem(rel, line, shown, f"{NOT_REGISTRY} (installed from {requirement.url})")
            )
            return None
        return requirement
