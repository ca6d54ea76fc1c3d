"""An offline advisory source: a directory of OSV records, such as a PyPA advisory-database clone.

Accepted layouts (``.yaml``, ``.yml`` and ``.json`` files; dot-files are ignored):

- the advisory-database repository itself: ``<root>/vulns/<package>/<ID>.yaml``;
- its ``vulns`` directory, or any directory of package folders: ``<root>/<package>/<ID>.*``;
- a flat directory of records, as in osv.dev's per-ecosystem exports: ``<root>/<ID>.json``.

Reading is lazy: a question about a package parses only that package's folders (folder
names are compared canonicalised, so ``PyYAML/`` answers for ``pyyaml``) and the loose
files of a flat layout; parsed records are cached for the life of the instance. Within those
files, each record answers for the packages its ``affected`` entries name (canonicalised too),
so the answer never depends on which packages were asked about before.

A file that cannot be used (unreadable, invalid YAML or JSON, not an OSV record) is recorded
in :attr:`OsvDirectory.problems` with its reason and skipped; the rest still answers. The
source does not log them: its callers decide how to show them (a table, a service log).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.health.advisories.interface import Advisory, AdvisoryError, PackageVersion
from specfleet.core.health.advisories.osv_record import (
    Malformed,
    OsvRecord,
    load_document,
    parse_record,
)

RECORD_SUFFIXES = (".yaml", ".yml", ".json")
MAX_RECORD_BYTES = 5 * 1024 * 1024  # real advisories are a few kilobytes


@dataclass(frozen=True)
class AdvisoryFileProblem:
    """An advisory file that could not be used, and why; the other files still count."""

    path: str
    reason: str


@dataclass(frozen=True)
class _Layout:
    folders: Mapping[NormalizedName, tuple[Path, ...]]
    loose_files: tuple[Path, ...]


class OsvDirectory:
    """:class:`AdvisorySource` over a local OSV advisory directory (see the module docstring).

    Safe to share between threads (the OSV-compatible server does): loading is serialised
    by one lock, and everything it caches is only ever added to.
    """

    name = "osv-directory"

    def __init__(self, path: Path, cache_dir: Path | None = None) -> None:
        self.path = path
        # parsed records as JSON, keyed by file path, size and mtime: a command run reads
        # them back instead of parsing YAML again (see bench/health_vs_pip_audit.py)
        self.cache_dir = cache_dir
        if not path.is_dir():
            reason = "does not exist" if not path.exists() else "is not a directory"
            raise AdvisoryError(f"advisory directory {path} {reason}")
        vulns = path / "vulns"
        self.root = vulns if vulns.is_dir() else path
        self._lock = threading.RLock()
        self._layout: _Layout | None = None
        self._files: dict[Path, OsvRecord | None] = {}
        self._problems: list[AdvisoryFileProblem] = []
        self._listings: dict[Path, tuple[Path, ...]] = {}

    @property
    def problems(self) -> list[AdvisoryFileProblem]:
        """Files skipped so far, each with its reason (grows as more packages are read)."""
        with self._lock:
            return list(self._problems)

    def advisories_for(
        self, packages: Sequence[PackageVersion]
    ) -> Mapping[PackageVersion, Sequence[Advisory]]:
        """Advisories that affect each exact version, or may (see :func:`advisory_affects`).

        An advisory whose data cannot decide (an unparsable version in a range) is included:
        a false alarm is cheaper than a missed vulnerability, and ``affects`` tells the two
        apart. Withdrawn advisories are never included.
        """
        answers: dict[PackageVersion, Sequence[Advisory]] = {}
        known: dict[NormalizedName, list[Advisory]] = {}
        for name, version in packages:
            canonical = canonicalize_name(name)
            if canonical not in known:
                known[canonical] = self.advisories_of(canonical)
            answers[(name, version)] = [
                advisory for advisory in known[canonical] if advisory.affects(version) is not False
            ]
        return answers

    def advisories_of(self, package: str) -> list[Advisory]:
        """Every advisory naming ``package``, whatever the version (withdrawn ones too), by id."""
        return [
            record.advisories[canonicalize_name(package)] for record in self.records_of(package)
        ]

    def records_of(self, package: str) -> list[OsvRecord]:
        """The OSV records naming ``package`` in an ``affected`` entry, ordered by id."""
        canonical = canonicalize_name(package)
        layout = self._scan()
        files = [path for folder in layout.folders.get(canonical, ()) for path in self._in(folder)]
        by_id: dict[str, OsvRecord] = {}
        for record in self._load([*files, *layout.loose_files]):
            if canonical in record.advisories:
                by_id.setdefault(record.id, record)  # the same id in two folders: first wins
        return [by_id[key] for key in sorted(by_id)]

    def record(self, record_id: str) -> OsvRecord | None:
        """The record with this id, as the OSV ``GET /v1/vulns/{id}`` answers; None if absent.

        Files are named after their id in every known layout, so that name is tried first;
        only an id found under no such name makes the whole directory be read (once).
        """
        layout = self._scan()
        if "/" in record_id or "\\" in record_id or record_id.startswith("."):
            return None
        names = {f"{record_id}{suffix}" for suffix in RECORD_SUFFIXES}
        candidates = [path for path in layout.loose_files if path.name in names]
        for folder in (folder for folders in layout.folders.values() for folder in folders):
            candidates.extend(folder / name for name in sorted(names) if (folder / name).is_file())
        for record in self._load(candidates):
            if record.id == record_id:
                return record
        for record in self._load(self._all_files(layout)):
            if record.id == record_id:
                return record
        return None

    def _all_files(self, layout: _Layout) -> list[Path]:
        folders = [folder for group in layout.folders.values() for folder in group]
        return [*layout.loose_files, *(path for folder in folders for path in self._in(folder))]

    def _in(self, folder: Path) -> tuple[Path, ...]:
        """The record files of a package folder, listed once per instance."""
        with self._lock:
            if folder not in self._listings:
                self._listings[folder] = _record_files(folder)
            return self._listings[folder]

    def _scan(self) -> _Layout:
        with self._lock:
            if self._layout is None:
                folders: dict[NormalizedName, list[Path]] = {}
                loose: list[Path] = []
                try:
                    entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
                except OSError as error:
                    raise AdvisoryError(
                        f"advisory directory {self.root} cannot be read: {error.strerror or error}"
                    ) from error
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        folders.setdefault(canonicalize_name(entry.name), []).append(
                            Path(entry.path)
                        )
                    elif entry.name.endswith(RECORD_SUFFIXES):
                        loose.append(Path(entry.path))
                self._layout = _Layout(
                    {name: tuple(paths) for name, paths in folders.items()}, tuple(loose)
                )
            return self._layout

    def _load(self, files: Iterable[Path]) -> list[OsvRecord]:
        """Parse each file once; returns the usable records, recording the problems."""
        records: list[OsvRecord] = []
        with self._lock:
            for file in files:
                if file not in self._files:
                    outcome = _read(file, self.cache_dir)
                    if isinstance(outcome, AdvisoryFileProblem):
                        self._problems.append(outcome)
                        self._files[file] = None
                    else:
                        self._files[file] = outcome
                record = self._files[file]
                if record is not None:
                    records.append(record)
        return records


def _read(path: Path, cache_dir: Path | None = None) -> OsvRecord | AdvisoryFileProblem:
    def problem(reason: str) -> AdvisoryFileProblem:
        return AdvisoryFileProblem(str(path), reason)

    try:
        stat = path.stat()
        if stat.st_size > MAX_RECORD_BYTES:
            return problem(f"{stat.st_size} bytes is larger than an advisory can be")
        cached = _cache_file(cache_dir, path, stat) if cache_dir is not None else None
        document = _cached_document(cached) if cached is not None else None
        if document is None:
            document = load_document(path.read_bytes(), json_format=path.suffix == ".json")
            if cached is not None and not isinstance(document, Malformed):
                _store_document(cached, document)
    except OSError as error:
        return problem(f"cannot be read ({error.strerror or error})")
    if isinstance(document, Malformed):
        return problem(document.reason)
    record = parse_record(document)
    if isinstance(record, Malformed):
        return problem(record.reason)
    return record


def _cache_file(cache_dir: Path, path: Path, stat: os.stat_result) -> Path:
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache_dir / f"{key.hexdigest()}.json"


def _cached_document(cached: Path) -> object | None:
    try:
        document: object = json.loads(cached.read_bytes())
    except (OSError, ValueError):
        return None  # absent or damaged: parse the advisory itself
    return document


def _store_document(cached: Path, document: object) -> None:
    # best effort: a cache that cannot be written only costs the next run a parse
    with contextlib.suppress(OSError, TypeError, ValueError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document))
        temporary.replace(cached)


def _record_files(folder: Path) -> tuple[Path, ...]:
    try:
        return tuple(
            sorted(
                path
                for path in folder.iterdir()
                if path.suffix in RECORD_SUFFIXES
                and not path.name.startswith(".")
                and path.is_file()
            )
        )
    except OSError as error:
        raise AdvisoryError(
            f"advisory folder {folder} cannot be read: {error.strerror or error}"
        ) from error
