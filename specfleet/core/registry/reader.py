"""Find and read the specs that registrations point at, in batches per repository.

A fleet import names thousands of specs in a few hundred repositories, so every git
operation is batched: one fetch per repository (concurrently), one ``rev-parse`` per branch,
one ``ls-tree`` per commit for all the paths wanted there, and one ``cat-file --batch`` per
repository for the contents. Specs whose blob is already registered need no reading at all.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from specfleet.core.errors import (
    InputError,
    RepositoryError,
    SpecfleetError,
    SpecInvalid,
    SpecMissing,
)
from specfleet.core.git import (
    MirrorCache,
    TreeEntry,
    branch_tip,
    default_branch,
    normalise_repo_url,
    read_blobs,
    tree_entries,
)
from specfleet.core.registry.decisions import Registration, ResolvedProduct, SpecFacts
from specfleet.core.spec.loader import MAX_SPEC_BYTES, check_spec_bytes, oversize_problem


@dataclass(frozen=True)
class LocatedSpec:
    """A registration whose spec file was found in its repository, not yet read."""

    registration: Registration
    repo_url: str
    mirror: Path
    commit: str
    blob: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.repo_url}@{self.registration.branch}:{self.registration.spec}"


Located = LocatedSpec | SpecfleetError
Resolved = ResolvedProduct | SpecfleetError


class SpecReader:
    """Locates and reads specs for one operation (a new operation sees repositories anew)."""

    def __init__(self, mirrors: MirrorCache, fetch_workers: int = 8) -> None:
        self.mirrors = mirrors
        self.fetch_workers = fetch_workers

    def locate(self, registrations: Sequence[Registration]) -> list[Located]:
        """Each registration's spec location, or the error that prevents finding it."""
        spellings = {registration.repo for registration in registrations}
        canonical = {repo: _normalised(repo) for repo in spellings}  # thousands of rows, few repos
        urls = [canonical[registration.repo] for registration in registrations]
        mirrors = self._fetch_all({url for url in urls if isinstance(url, str)})
        # a row that names no branch means the repository's own default (trunk, master, ...),
        # as Renovate and GitLab read it; `main` is only the fallback when the mirror cannot say
        defaults: dict[str, str | None] = {}  # asked once per repository, not per row
        registrations = [
            _on_default_branch(registration, url, mirrors, defaults)
            for registration, url in zip(registrations, urls, strict=True)
        ]
        tips: dict[tuple[str, str], str | SpecfleetError] = {}
        wanted: dict[tuple[str, str], list[str]] = defaultdict(list)
        for registration, url in zip(registrations, urls, strict=True):
            if not isinstance(url, str):
                continue
            mirror = mirrors[url]
            if isinstance(mirror, SpecfleetError):
                continue
            key = (url, registration.branch)
            if key not in tips:
                tips[key] = _tip(mirror, url, registration.branch)
            tip = tips[key]
            if isinstance(tip, str):
                wanted[(url, tip)].append(registration.spec)
        entries = {
            (url, tip): _entries(mirrors[url], tip, paths)  # type: ignore[arg-type]
            for (url, tip), paths in wanted.items()
        }
        return [
            self._locate_one(registration, url, mirrors, tips, entries)
            for registration, url in zip(registrations, urls, strict=True)
        ]

    def _locate_one(
        self,
        registration: Registration,
        url: str | SpecfleetError,
        mirrors: dict[str, Path | SpecfleetError],
        tips: dict[tuple[str, str], str | SpecfleetError],
        entries: dict[tuple[str, str], dict[str, TreeEntry] | SpecfleetError],
    ) -> Located:
        if not isinstance(url, str):
            return url
        mirror = mirrors[url]
        if isinstance(mirror, SpecfleetError):
            return mirror
        tip = tips[(url, registration.branch)]
        if isinstance(tip, SpecfleetError):
            return tip
        found = entries[(url, tip)]
        if isinstance(found, SpecfleetError):
            return found
        entry = found.get(registration.spec)
        if entry is None:
            label = f"{url}@{registration.branch}:{registration.spec}"
            return SpecMissing(f"{label}: no such file in the repository")
        return LocatedSpec(registration, url, mirror, tip, entry.blob, entry.size)

    def read(
        self, located: Sequence[LocatedSpec], on_progress: Callable[[int], None] | None = None
    ) -> list[Resolved]:
        """Read and check the located specs; each becomes a product or the reason it cannot.

        ``on_progress`` is called with the number of specs checked so far.
        """
        by_mirror: dict[Path, list[str]] = defaultdict(list)
        for item in located:
            if item.size <= MAX_SPEC_BYTES:
                by_mirror[item.mirror].append(item.blob)
        contents: dict[str, bytes | SpecfleetError] = {}
        for mirror, blobs in by_mirror.items():
            try:
                contents.update(read_blobs(mirror, blobs))
            except RepositoryError as error:
                contents.update(dict.fromkeys(blobs, error))
        resolved: list[Resolved | None] = []
        to_check: list[tuple[int, tuple[bytes, str]]] = []
        for index, item in enumerate(located):
            data = contents.get(item.blob)
            if item.size > MAX_SPEC_BYTES:
                resolved.append(SpecInvalid(item.label, [oversize_problem(item.label, item.size)]))
            elif isinstance(data, SpecfleetError):
                resolved.append(data)
            else:
                resolved.append(None)
                to_check.append((index, (data or b"", item.label)))
        checked = check_many([pair for _, pair in to_check], on_progress)
        for (index, _), facts in zip(to_check, checked, strict=True):
            item = located[index]
            resolved[index] = (
                facts
                if isinstance(facts, SpecInvalid)
                else ResolvedProduct(
                    item.registration, item.repo_url, facts, item.commit, item.blob
                )
            )
        return [outcome for outcome in resolved if outcome is not None]

    def resolve(self, registration: Registration) -> ResolvedProduct:
        """Locate, read and check one registration's spec, raising what prevents it."""
        (located,) = self.locate([registration])
        if isinstance(located, SpecfleetError):
            raise located
        (resolved,) = self.read([located])
        if isinstance(resolved, SpecfleetError):
            raise resolved
        return resolved

    def _fetch_all(self, urls: set[str]) -> dict[str, Path | SpecfleetError]:
        ordered = sorted(urls)
        if not ordered:
            return {}
        workers = max(1, min(self.fetch_workers, len(ordered)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return dict(zip(ordered, pool.map(self._fetch, ordered), strict=True))

    def _fetch(self, url: str) -> Path | SpecfleetError:
        try:
            return self.mirrors.fetch(url)
        except SpecfleetError as error:
            return error


def with_default_branch(mirrors: MirrorCache, registration: Registration) -> Registration:
    """The registration on the repository's own default branch (``trunk``, ``master``, ...)."""
    url = normalise_repo_url(registration.repo)
    branch = default_branch(mirrors.fetch(url), url)
    return registration.model_copy(update={"branch": branch})


PARALLEL_CHECKS_FROM = 1000  # below this, starting worker processes costs more than it saves


def check_many(
    items: Sequence[tuple[bytes, str]], on_progress: Callable[[int], None] | None = None
) -> list[SpecFacts | SpecInvalid]:
    """Check many specs, on every core when there are enough to be worth it.

    Specs are parsed and validated in worker processes (YAML parsing is CPU-bound Python);
    only their small :class:`SpecFacts` or problems travel back.
    """
    workers = min(os.cpu_count() or 1, 8)
    parallel = len(items) >= PARALLEL_CHECKS_FROM and workers > 1 and sys.platform == "linux"
    chunk = max(100, len(items) // (workers * 8)) if parallel else 100
    results: list[SpecFacts | SpecInvalid] = []
    with contextlib.ExitStack() as stack:
        if parallel:
            context = multiprocessing.get_context("fork")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=context))
            checked: Iterable[SpecFacts | SpecInvalid] = pool.map(_facts, items, chunksize=chunk)
        else:
            checked = map(_facts, items)
        for result in checked:
            results.append(result)
            if on_progress is not None and len(results) % chunk == 0:
                on_progress(len(results))
    return results


def _facts(item: tuple[bytes, str]) -> SpecFacts | SpecInvalid:
    data, label = item
    check = check_spec_bytes(data, label)
    if check.spec is None:
        return SpecInvalid(label, check.problems)
    return SpecFacts.of(check.spec)


# Errors are values below: one bad repository or branch must not stop the rest of a batch.


def _normalised(repo: str) -> str | SpecfleetError:
    try:
        return normalise_repo_url(repo)
    except InputError as error:
        return error


def _on_default_branch(
    registration: Registration,
    url: str | SpecfleetError,
    mirrors: dict[str, Path | SpecfleetError],
    defaults: dict[str, str | None],
) -> Registration:
    if "branch" in registration.model_fields_set or not isinstance(url, str):
        return registration
    if url not in defaults:
        mirror = mirrors.get(url)
        try:
            defaults[url] = default_branch(mirror, url) if isinstance(mirror, Path) else None
        except SpecfleetError:
            defaults[url] = None
    branch = defaults[url]
    return registration if branch is None else registration.model_copy(update={"branch": branch})


def _tip(mirror: Path, url: str, branch: str) -> str | SpecfleetError:
    try:
        return branch_tip(mirror, url, branch)
    except SpecfleetError as error:
        return error


def _entries(mirror: Path, commit: str, paths: list[str]) -> dict[str, TreeEntry] | SpecfleetError:
    try:
        return tree_entries(mirror, commit, paths)
    except SpecfleetError as error:
        return error
