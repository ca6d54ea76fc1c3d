"""One interface over every dependency layout: which files a product's pins come from, how
they are read, and how a lock is moved.

A :class:`LockFormat` names a lock file, the file beside it that declares the intent, how to
read each, and how to move pins in the lock (the tool's own command when there is one and it
is installed, else a precise in-place edit). Requirements files and PEP 621 pyproject.toml
without a lock are the declared files themselves (:data:`DECLARED`).

Adding a format: write its reader and in-place editor in a module of this package, add a
:class:`LockFormat` to :data:`LOCK_FORMATS`, and a fixture with a known advisory to the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName

from specfleet.core.health.pins.model import Collector, LockFormat, Rewrite

Reader = Callable[[Collector, Path], "str | None"]  # adds pins; returns a Python target
Editor = Callable[[str, Mapping[NormalizedName, str]], Rewrite]


@dataclass(frozen=True)
class LockKind:
    """How one lock format is read and moved."""

    format: LockFormat
    filename: str  # e.g. "uv.lock"
    intent: str | None  # the declaring file beside it, e.g. "pyproject.toml"
    read: Reader
    edit: Editor | None  # in-place edit; None when only its tool can regenerate it
    relock: str  # the command an owner runs to refresh it (named in notes)


def _kinds() -> dict[str, LockKind]:
    from specfleet.core.health.pins.pipfile import edit_pipfile_lock, read_pipfile_lock
    from specfleet.core.health.pins.poetry import edit_poetry_lock, read_poetry_lock
    from specfleet.core.health.pins.uvlock import edit_uv_lock, read_uv_lock

    return {
        "uv.lock": LockKind(
            "uv.lock", "uv.lock", "pyproject.toml", read_uv_lock, edit_uv_lock, "uv lock"
        ),
        "poetry.lock": LockKind(
            "poetry.lock",
            "poetry.lock",
            "pyproject.toml",
            read_poetry_lock,
            edit_poetry_lock,
            "poetry lock --no-update",
        ),
        "Pipfile.lock": LockKind(
            "Pipfile.lock",
            "Pipfile.lock",
            "Pipfile",
            read_pipfile_lock,
            edit_pipfile_lock,
            "pipenv lock",
        ),
    }


def lock_kind(filename: str) -> LockKind | None:
    """The lock format of a file name (``uv.lock``, ``poetry.lock``, ``Pipfile.lock``)."""
    return _kinds().get(filename)


def lock_beside(path: Path) -> Path | None:
    """The lock a declaring file (pyproject.toml, Pipfile) is resolved into, when present."""
    for kind in _kinds().values():
        candidate = path.with_name(kind.filename)
        if kind.intent == path.name and candidate.is_file():
            return candidate
    return None


# the order in which a checkout without a spec is searched for its dependency file: what is
# installed (a lock) before what is declared
DISCOVERY_ORDER = (
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "requirements.txt",
    "requirements.in",
    "Pipfile",
    "pyproject.toml",
)


def discover(root: Path) -> str | None:
    """The dependency file of a checkout that has no spec naming one, or None."""
    for name in DISCOVERY_ORDER:
        if (root / name).is_file():
            return name
    found = sorted(root.glob("requirements*.txt"))
    return found[0].name if found else None
