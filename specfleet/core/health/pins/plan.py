"""Planning and applying pin changes across a product's files, whatever their format.

:func:`plan_rewrites` is pure over the files' text: which declared files change (each by
:func:`rewrite_pins`), which pins the lock must move, and what cannot be done and why.
:func:`write_rewrites` applies a plan all or nothing: the declared files are rewritten in
place; the lock is moved by its tool when there is one and it is installed (``uv pip compile``
for a compiled requirements lock, ``uv lock`` for uv.lock), else by a precise in-place edit.
A file that could not be parsed is never rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.errors import DependencyFileError
from specfleet.core.health.pins.compile import compile_lock
from specfleet.core.health.pins.files import replace_all, restore
from specfleet.core.health.pins.formats import lock_kind
from specfleet.core.health.pins.model import (
    FileKind,
    LockFormat,
    PinSet,
    Rewrite,
    RewriteNote,
    decode,
)
from specfleet.core.health.pins.pipfile import rewrite_pipfile
from specfleet.core.health.pins.pyproject import rewrite_pyproject
from specfleet.core.health.pins.requirements import rewrite_requirements
from specfleet.core.tools import find_tool


def rewrite_pins(
    text: str,
    kind: FileKind,
    changes: Mapping[NormalizedName, str],
    *,
    pin_ranges: bool = False,
) -> Rewrite:
    """Change the version of the named requirements in a file's text and nothing else.

    ``changes`` maps canonical names to exact versions. Every requirement of a name changes
    (a package split by markers moves as a whole). Exact pins keep their operator (``==`` or
    ``===``); ranges and unversioned requirements are left with a note unless ``pin_ranges``
    asks to replace their specifier with ``==version``.
    """
    wanted = {canonicalize_name(name): version for name, version in changes.items()}
    if kind == "pyproject":
        text, changed, notes, found = rewrite_pyproject(text, wanted, pin_ranges)
    elif kind == "pipfile":
        text, changed, notes, found = rewrite_pipfile(text, wanted, pin_ranges)
    else:
        text, changed, notes, found = rewrite_requirements(text, wanted, pin_ranges)
    for name in sorted(set(wanted) - found):
        notes.append(RewriteNote(name, 0, "not-declared", f"{name} is not declared here"))
    return Rewrite(text, tuple(changed), tuple(notes))


def file_kind(path: Path) -> FileKind:
    if path.name == "Pipfile":
        return "pipfile"
    return "pyproject" if path.suffix == ".toml" else "requirements"


@dataclass(frozen=True)
class FileEdit:
    """A dependency file whose text a plan changes."""

    file: str  # repository-relative
    original: str
    rewrite: Rewrite


@dataclass(frozen=True)
class RewritePlan:
    """What applying changes to a product's dependency files will do, before doing it."""

    edits: tuple[FileEdit, ...]  # only declared files whose text changes
    lock: str | None  # the lock to move, when the product has one
    lock_changes: tuple[tuple[NormalizedName, str], ...]  # NAME==VERSION the lock must get
    notes: tuple[RewriteNote, ...] = ()
    lock_format: LockFormat | None = None
    lock_edit: FileEdit | None = None  # the in-place edit of the lock (formats other than .txt)

    @property
    def applied(self) -> frozenset[NormalizedName]:
        """Names whose version the plan changes (in a declared file or in the lock)."""
        names = {change.name for edit in self.edits for change in edit.rewrite.changed}
        return frozenset(names | {name for name, _ in self.lock_changes})

    @property
    def hashes_dropped(self) -> bool:
        """A file outside the lock lost hashes: pip --require-hashes refuses it as written."""
        return any(edit.rewrite.lock_stale for edit in self.edits)

    @property
    def lock_action(self) -> str:
        """How the lock is moved, in words for a diff or a description."""
        if self.lock_format == "requirements":
            return "regenerated with uv pip compile"
        if self.lock_format == "uv.lock":
            return "relocked with uv lock --upgrade-package (edited in place without uv)"
        return "edited in place"


def plan_rewrites(
    repo: Path,
    pinset: PinSet,
    changes: Mapping[NormalizedName, str],
    *,
    pin_ranges: bool = False,
) -> RewritePlan:
    """Work out the file edits and lock moves for ``changes``; reads, writes nothing."""
    root = repo.resolve()
    wanted = {canonicalize_name(name): version for name, version in changes.items()}
    edits: list[FileEdit] = []
    notes: list[RewriteNote] = []
    declared: set[NormalizedName] = set()
    blocked: set[NormalizedName] = set()
    for rel in pinset.files:
        if rel == pinset.lock:
            continue
        if rel in pinset.unreadable:
            notes.extend(_unreadable(name, rel) for name in wanted)
            blocked |= set(wanted)
            continue
        path = root / rel
        text = decode(path.read_bytes()) if path.is_file() else None
        if text is None:
            continue
        rewrite = rewrite_pins(text, file_kind(path), wanted, pin_ranges=pin_ranges)
        file_notes = [n for n in rewrite.notes if n.kind != "not-declared"]
        declared |= {n.name for n in file_notes} | {c.name for c in rewrite.changed}
        blocked |= {
            n.name
            for n in file_notes
            if n.kind in ("range-excludes", "not-rewritable", "invalid-version")
        }
        notes.extend(replace(note, file=rel) for note in file_notes)
        if rewrite.text != text:
            edits.append(FileEdit(rel, text, rewrite))
    if pinset.lock is None:
        notes.extend(_undeclared(name) for name in wanted if name not in declared)
        return RewritePlan(tuple(edits), None, (), tuple(notes))
    if pinset.lock in pinset.unreadable:
        notes.extend(_unreadable(name, pinset.lock) for name in wanted)
        return RewritePlan(tuple(edits), pinset.lock, (), tuple(notes), pinset.lock_format)
    lock_changes = _lock_changes(pinset, wanted, edits, declared, blocked, notes)
    lock_edit = _lock_edit(root, pinset, lock_changes)
    if lock_edit is not None:
        notes.extend(replace(note, file=pinset.lock) for note in lock_edit.rewrite.notes)
    return RewritePlan(
        tuple(edits), pinset.lock, lock_changes, tuple(notes), pinset.lock_format, lock_edit
    )


def _lock_changes(
    pinset: PinSet,
    wanted: Mapping[NormalizedName, str],
    edits: list[FileEdit],
    declared: set[NormalizedName],
    blocked: set[NormalizedName],
    notes: list[RewriteNote],
) -> tuple[tuple[NormalizedName, str], ...]:
    locked = {pin.name: pin.version for pin in pinset.pins}
    edited = {change.name for edit in edits for change in edit.rewrite.changed}
    lock_changes: list[tuple[NormalizedName, str]] = []
    for name, version in wanted.items():
        if name in blocked:
            continue  # the intent does not allow it; the notes say why
        if name not in locked and name not in declared:
            notes.append(_undeclared(name))
        elif locked.get(name) != version or name in edited:
            lock_changes.append((name, version))
        else:
            notes.append(RewriteNote(name, 0, "already-pinned", f"{name} is already =={version}"))
    return tuple(lock_changes)


def _lock_edit(
    root: Path, pinset: PinSet, lock_changes: tuple[tuple[NormalizedName, str], ...]
) -> FileEdit | None:
    kind = lock_kind(Path(pinset.lock or "").name)
    if kind is None or kind.edit is None or not lock_changes or pinset.lock is None:
        return None
    text = decode((root / pinset.lock).read_bytes()) or ""
    return FileEdit(pinset.lock, text, kind.edit(text, dict(lock_changes)))


def _undeclared(name: NormalizedName) -> RewriteNote:
    return RewriteNote(name, 0, "not-declared", f"{name} is not declared in any dependency file")


def _unreadable(name: NormalizedName, rel: str) -> RewriteNote:
    return RewriteNote(
        name, 0, "unreadable", f"{rel} could not be parsed, so it is not rewritten", file=rel
    )


def write_rewrites(
    repo: Path,
    pinset: PinSet,
    changes: Mapping[NormalizedName, str],
    *,
    pin_ranges: bool = False,
    python_version: str | None = None,
    uv: Path | None = None,
    timeout: float = 600,
    use_tools: bool = True,
) -> list[Path]:
    """Apply ``changes`` to the product's files on disk; return the paths that changed.

    Declared files are rewritten in place (see :func:`rewrite_pins`); the lock is moved as
    :class:`RewritePlan` says. Files are replaced atomically; if any write or the lock tool
    fails, every file is put back as it was and :class:`DependencyFileError` is raised.
    ``python_version`` is the product's target for ``uv pip compile`` (the spec's runtime,
    else what the files say); ``uv`` defaults to the one installed beside the interpreter;
    ``use_tools=False`` edits a uv.lock in place instead of running ``uv lock``.
    """
    root = repo.resolve()
    plan = plan_rewrites(root, pinset, changes, pin_ranges=pin_ranges)
    originals = {root / edit.file: edit.original for edit in plan.edits}
    written = replace_all({root / edit.file: edit.rewrite.text for edit in plan.edits}, originals)
    if plan.lock is None or not plan.lock_changes:
        return written
    lock_path = root / plan.lock
    old_lock = lock_path.read_bytes()
    try:
        new_lock = _moved_lock(root, lock_path, plan, python_version, uv, timeout, use_tools)
        if new_lock != old_lock:
            replace_all({lock_path: new_lock.decode("utf-8")}, {})
            written.append(lock_path)
    except BaseException:
        restore({**originals, lock_path: old_lock.decode("utf-8")})
        raise
    return written


def _moved_lock(
    root: Path,
    lock_path: Path,
    plan: RewritePlan,
    python_version: str | None,
    uv: Path | None,
    timeout: float,
    use_tools: bool,
) -> bytes:
    if plan.lock_format == "requirements":
        return compile_lock(root, lock_path, plan.lock_changes, python_version, uv, timeout)
    if plan.lock_format == "uv.lock" and use_tools:
        found = uv or (Path(tool) if (tool := find_tool("uv")) else None)
        if found is not None:
            return _relock_with_uv(root, lock_path, plan, found, timeout)
    if plan.lock_edit is None:
        raise DependencyFileError(f"{plan.lock}: this lock format cannot be edited in place")
    return plan.lock_edit.rewrite.text.encode("utf-8")


def _relock_with_uv(
    root: Path, lock_path: Path, plan: RewritePlan, uv: Path, timeout: float
) -> bytes:
    from specfleet.core.health.pins.read import read_pins  # read imports this package
    from specfleet.core.health.pins.uvlock import run_uv_lock

    data = run_uv_lock(uv, lock_path, dict(plan.lock_changes), timeout)
    after = {pin.name: pin.version for pin in read_pins(root, plan.lock or "uv.lock").pins}
    missing = [f"{n}=={v}" for n, v in plan.lock_changes if after.get(n) != v]
    if missing:
        raise DependencyFileError(
            f"{plan.lock}: uv lock did not pin {', '.join(missing)}; nothing was changed"
        )
    return data
