"""What ``specfleet health`` and ``remediate`` look at: a checkout with or without a spec, or
one dependency file. Pure decisions over paths; the spec is loaded only when it exists."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from specfleet.core.errors import DependencyFileError
from specfleet.core.health.pins import LOCK_SEARCH, discover


@dataclass(frozen=True)
class Target:
    """A product as health sees it: where its pins are, and what the spec adds when present."""

    root: Path
    dependencies: str  # repository-relative
    product_id: str
    runtime: str | None  # "python3.8": the spec's runtime; None without a spec
    owners: tuple[str, ...] = ()
    spec_path: Path | None = None


def locate(path: Path, spec_name: str, spec_given: bool) -> Target:
    """The target for ``path`` (a checkout or a dependency file) and the ``--spec`` name.

    A spec is optional: without one the dependency file is found by name (a lock before the
    file that declares it) and the product is named after its directory.
    """
    if path.is_file():
        root, named = path.resolve().parent, path.name
    elif path.is_dir():
        root, named = path.resolve(), None
    else:
        raise DependencyFileError(f"{path}: no such file or directory")
    spec_path = root / spec_name
    if spec_given and not spec_path.is_file():
        raise DependencyFileError(f"{spec_path}: no such file (named by --spec)")
    if spec_path.is_file():
        from specfleet.core.spec import load_spec  # only when there is a spec to read

        spec = load_spec(spec_path)
        return Target(
            root,
            named or spec.implementation.dependencies,
            spec.id,
            spec.implementation.runtime,
            tuple(spec.owners),
            spec_path,
        )
    found = named or discover(root)
    if found is None:
        raise DependencyFileError(
            f"{root}: no dependency file found (looked for {', '.join(LOCK_SEARCH)} and "
            "requirements*.txt) and no spec names one"
        )
    return Target(root, found, root.name, None)


def python_version(target: Target, files_say: str | None) -> tuple[str, str]:
    """(X.Y to resolve for, where it came from): the spec, else the files, else this Python."""
    if target.runtime:
        return target.runtime.removeprefix("python"), f"the spec's runtime {target.runtime}"
    if files_say:
        return files_say, f"the dependency files (requires Python {files_say})"
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return here, f"the running Python {here} (no spec, and the files state no target)"
