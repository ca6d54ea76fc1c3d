"""Writing dependency files all or nothing: each staged beside its target with the target's
permissions, then renamed into place; a failure puts back what was already replaced."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from specfleet.core.errors import DependencyFileError


def replace_all(contents: Mapping[Path, str], originals: Mapping[Path, str]) -> list[Path]:
    """Write every file or none: stage each beside its target, then rename them into place."""
    staged: dict[Path, Path] = {}
    try:
        for path, text in contents.items():
            staged[path] = stage(path, text.encode("utf-8"))
    except OSError as error:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        raise DependencyFileError(
            f"{path}: cannot be written ({error.strerror or error})"
        ) from error
    done: list[Path] = []
    try:
        for path, temporary in staged.items():
            _move(temporary, path)
            done.append(path)
    except OSError as error:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)
        restore({path: originals[path] for path in done if path in originals})
        raise DependencyFileError(
            f"{path}: cannot be replaced ({error.strerror or error})"
        ) from error
    return done


def stage(path: Path, data: bytes) -> Path:
    """A temporary file beside ``path`` holding ``data``, with ``path``'s permissions."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, path.stat().st_mode & 0o7777)  # noqa: PTH101 - mode of another file
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _move(temporary: Path, path: Path) -> None:
    """Rename into place; a rename within a directory is atomic on POSIX."""
    temporary.replace(path)


def restore(originals: Mapping[Path, str]) -> None:
    # best effort: the caller is already failing and reports the first error
    for path, text in originals.items():
        with contextlib.suppress(OSError):
            _move(stage(path, text.encode("utf-8")), path)
