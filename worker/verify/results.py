"""Reuse of one side's verification results: the same code, environment and fixtures in the
same window give the same evidence, so they are built and tested once.

The baseline of a product (its default branch) is verified again for every candidate, every
repair round and every redelivered task until a merge moves it; the candidate of a crashed
task is verified again when the task is redelivered. Both are keyed by everything that can
change the result: the checkout's content, the environment key (runtime, dependency files,
platform), the fixtures' content, the spec as used, whether failure modes were provoked, the
sandbox kind and the window. The window bounds trust: a product whose tests depend on the
date is run afresh at least once a week.

Entries are JSON (never pickle: in the subprocess fallback a product build could write here,
and a pickle would then run its code in the worker) plus a copy of the side's outputs, which
the data comparison reads. An entry appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import structlog
from pydantic import TypeAdapter, ValidationError

from specfleet.worker.verify.model import SandboxKind, SideResult

log = structlog.get_logger(__name__)

LAYOUT_VERSION = "side-results-1"
IGNORED_NAMES = frozenset({".git", "__pycache__", ".pytest_cache", ".venv"})
DEFAULT_MAX_AGE_DAYS = 8.0


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, mode bit and content under ``root`` (sorted)."""
    digest = hashlib.sha256()
    for path in sorted(_files(root)):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(b"L" + relative.encode() + b"\0" + str(path.readlink()).encode() + b"\0")
            continue
        executable = b"x" if os.access(path, os.X_OK) else b"-"
        digest.update(b"F" + executable + relative.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, names, files in os.walk(root):
        names[:] = [name for name in names if name not in IGNORED_NAMES]
        found.extend(Path(directory) / name for name in files if not name.endswith(".pyc"))
    return found


def side_key(
    *,
    checkout: str,
    environment: str,
    fixtures: str,
    spec: str,
    provoked: bool,
    sandbox: SandboxKind,
    window: str,
) -> str:
    """The cache key of one side: equal exactly when the evidence would be."""
    parts = (LAYOUT_VERSION, checkout, environment, fixtures, spec, str(provoked), sandbox, window)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class SideResultCache:
    """Side results under ``root``/<key>/ (``result.json`` and ``outputs/``)."""

    def __init__(self, root: Path, max_age_days: float = DEFAULT_MAX_AGE_DAYS) -> None:
        self.root = root
        self.max_age_days = max_age_days

    def get(self, key: str, outputs: Path) -> SideResult | None:
        """The cached result, its outputs copied into ``outputs``; None on a miss."""
        entry = self.root / key
        try:
            result = _adapter().validate_json((entry / "result.json").read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as error:
            log.warning("unreadable cached verification result", key=key, error=str(error))
            shutil.rmtree(entry, ignore_errors=True)
            return None
        if outputs.exists():
            shutil.rmtree(outputs)
        shutil.copytree(entry / "outputs", outputs, symlinks=False)
        return replace(result, reused=True)

    def put(self, key: str, result: SideResult, outputs: Path) -> None:
        """Store a result and its outputs; a concurrent writer of the same key is harmless."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            shutil.copytree(outputs, staging / "outputs", symlinks=False)
            (staging / "result.json").write_bytes(_adapter().dump_json(result))
            with contextlib.suppress(OSError):  # another worker stored the same evidence first
                staging.rename(self.root / key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def evict(self, now: float | None = None) -> list[Path]:
        """Remove entries older than ``max_age_days`` (and leftovers of interrupted writes)."""
        if not self.root.is_dir():
            return []
        now = time.time() if now is None else now
        removed = []
        for entry in self.root.iterdir():
            stale = now - entry.stat().st_mtime > self.max_age_days * 86400
            if stale or (entry.name.startswith(".") and now - entry.stat().st_mtime > 3600):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed


@functools.cache
def _adapter() -> TypeAdapter[SideResult]:
    """Built on first use: pydantic compiles a validator for the whole result tree."""
    return TypeAdapter(SideResult)
