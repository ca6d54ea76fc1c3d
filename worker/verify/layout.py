"""Where a product's build reads its inputs and writes its outputs, and a run staged for it.

Two layouts exist:

* **directories** (the build command names ``{inputs}`` and/or ``{outputs}``): the verifier
  fills ``{inputs}`` with ``<name>.<format>`` copies of the fixtures and reads outputs from
  ``{outputs}/<path>``;
* **in the checkout** (the command names neither, as ``dbt build --profiles-dir .`` does):
  the build reads its inputs at their fixture paths in the repository (dbt's ``seeds/``) and
  writes outputs where the spec's ``path`` says, relative to the repository (a DuckDB file
  beside ``dbt_project.yml``). The verifier puts the baseline's fixtures at those paths,
  runs the build in a copy of the checkout, and copies each declared output into the run's
  outputs directory, so contract and data checks read them exactly as in the other layout.

Every build that may run at the same time as another (the tests and the provoked failure
modes) gets its own copy of the checkout: a DuckDB file lock, dbt's ``target/`` or a
half-deleted input must never be shared. Pure decisions here, plus the file copying that
stages a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from specfleet.core.spec.layout import builds_in_checkout, layout_notes
from specfleet.core.spec.model import Spec

__all__ = ["builds_in_checkout", "layout_notes"]

COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".venv")
# What a DuckDB file may leave beside itself; copied with it so the copy opens consistently.
_DUCKDB_SIDE_FILES = (".wal",)


def declared_output_paths(spec: Spec) -> list[str]:
    """Each file the outputs live in, once (two DuckDB tables may share one file)."""
    return list(dict.fromkeys(output.path for output in spec.outputs))


def missing_outputs_warning(spec: Spec, outputs: Path) -> str | None:
    """The report's warning when a checkout build succeeded but wrote nothing declared."""
    if any((outputs / path).exists() for path in declared_output_paths(spec)):
        return None
    paths = ", ".join(declared_output_paths(spec))
    return (
        "the build command mentions neither {inputs} nor {outputs} and no output appeared "
        f"where the spec declares it ({paths}, relative to the repository): the build may "
        "write elsewhere, so the contract and data could not be checked"
    )


@dataclass(frozen=True)
class StagedRun:
    """One build ready to run: its working copy, command, writable paths, outputs directory."""

    worktree: Path
    command: str
    writable: tuple[Path, ...]
    outputs: Path  # where the run's outputs are (or will be collected) as <path>
    in_checkout: bool


def stage_run(
    spec: Spec,
    source: Path,
    fixtures: Path,
    scratch: Path,
    *,
    worktree: Path | None = None,
    missing: str | None = None,
    empty: str | None = None,
) -> StagedRun:
    """Stage one build under ``scratch``; ``worktree`` reuses a copy, else ``source`` is copied.

    ``fixtures`` holds the baseline's fixtures as ``<name>.<format>``; ``missing``/``empty``
    name the input a failure mode removes or empties.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    if worktree is None:
        worktree = scratch / "worktree"
        shutil.copytree(source, worktree, ignore=COPY_IGNORE, symlinks=True)
    outputs = scratch / "outputs"
    outputs.mkdir(exist_ok=True)
    if builds_in_checkout(spec):
        _place_fixtures(spec, fixtures, worktree, missing=missing, empty=empty)
        return StagedRun(worktree, spec.implementation.build, (), outputs, True)
    inputs = scratch / "inputs"
    shutil.copytree(fixtures, inputs)
    for path in inputs.iterdir():
        stem = path.name.rsplit(".", 1)[0]
        if stem == missing:
            path.unlink()
        elif stem == empty:
            path.write_bytes(b"")
    command = spec.implementation.build.format(inputs=inputs, outputs=outputs)
    return StagedRun(worktree, command, (inputs, outputs), outputs, False)


def collect_outputs(spec: Spec, run: StagedRun) -> list[str]:
    """Copy a checkout build's declared outputs into ``run.outputs``; the paths found."""
    if not run.in_checkout:
        return []
    found = []
    for path in declared_output_paths(spec):
        source = run.worktree / path
        if not source.is_file() or source.is_symlink():
            continue  # a symlink could point anywhere on the machine: not an output
        target = run.outputs / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        for suffix in _DUCKDB_SIDE_FILES:
            side = source.with_name(source.name + suffix)
            if side.is_file() and not side.is_symlink():
                shutil.copyfile(side, target.with_name(target.name + suffix))
        found.append(path)
    return found


def left_behind(spec: Spec, run: StagedRun, before: Iterable[str] = ()) -> tuple[str, ...]:
    """Outputs a failed build left: files in ``{outputs}``, or declared paths in the checkout."""
    if run.in_checkout:
        existed = set(before)
        return tuple(
            path
            for path in declared_output_paths(spec)
            if (run.worktree / path).exists() and path not in existed
        )
    return tuple(
        sorted(
            str(path.relative_to(run.outputs)) for path in run.outputs.rglob("*") if path.is_file()
        )
    )


def existing_outputs(spec: Spec, worktree: Path) -> list[str]:
    """Declared output paths already present in a checkout (committed, or left by a tool)."""
    return [path for path in declared_output_paths(spec) if (worktree / path).exists()]


def _place_fixtures(
    spec: Spec,
    fixtures: Path,
    worktree: Path,
    *,
    missing: str | None,
    empty: str | None,
) -> None:
    """The baseline's fixtures at their repository paths; a failure mode's input removed."""
    for item in spec.inputs:
        target = worktree / item.fixture
        staged = fixtures / f"{item.name}.{item.format}"
        if target.is_symlink():
            target.unlink()
        if item.name == missing:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.name == empty:
            target.write_bytes(b"")
        elif staged.is_file():
            shutil.copyfile(staged, target)
