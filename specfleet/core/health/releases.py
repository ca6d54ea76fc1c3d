"""Release facts from a Python package index's JSON API (``/pypi/NAME/json``), cached.

A fleet of a thousand products shares most of its pins, so facts are cached per package
(on disk under ``$SPECFLEET_HOME/cache/pypi``, or in Redis in fleet mode) for a day by
default: the index is asked once per package per day, not once per product. Fetches are
concurrent but bounded, time-limited and retried; an index that cannot be reached, or a
package it does not know (a private package), degrades to :class:`UnknownFacts` with the
reason, never to a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from specfleet.core.log import get_logger

if TYPE_CHECKING:
    import httpx  # imported when the index is asked: a warm cache never needs it

DEFAULT_INDEX_URL = "https://pypi.org"
DAY = 24 * 3600
MISSING_TTL_SECONDS = 3600  # a 404 may be a typo fixed within the hour; re-ask sooner


log = get_logger(__name__)


@dataclass(frozen=True)
class Release:
    """One released version of a package."""

    version: str
    uploaded_at: dt.datetime | None
    yanked: bool = False
    yanked_reason: str | None = None
    requires_python: str | None = None

    @property
    def parsed(self) -> Version | None:
        try:
            return Version(self.version)
        except InvalidVersion:
            return None


@dataclass(frozen=True)
class ReleaseFacts:
    """What the index says about a package: its releases and its latest version."""

    name: NormalizedName
    latest: str | None
    releases: tuple[Release, ...]  # sorted by version, unparsable versions last
    fetched_at: dt.datetime

    def release(self, version: str) -> Release | None:
        for release in self.releases:
            if release.version == version:
                return release
        wanted = _parse(version)  # "1.0" and "1.0.0" name the same release
        if wanted is None:
            return None
        return next((release for release in self.releases if release.parsed == wanted), None)


@dataclass(frozen=True)
class UnknownFacts:
    """The index could not say: the package is unknown to it, or it could not be reached."""

    name: NormalizedName
    reason: str


Facts = ReleaseFacts | UnknownFacts


class FactsCache(Protocol):
    """Stores trimmed index documents by package name, each for a limited time."""

    def get(self, name: NormalizedName) -> dict[str, Any] | None: ...

    def put(self, name: NormalizedName, document: dict[str, Any], ttl_seconds: int) -> None: ...


class DiskFactsCache:
    """One JSON file per package; expiry is stored in the file, writes are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: NormalizedName) -> Path:
        return self.root / f"{name}.json"

    def get(self, name: NormalizedName) -> dict[str, Any] | None:
        try:
            stored = json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("expires", 0) < time.time():
            return None
        document = stored.get("document")
        return document if isinstance(document, dict) else None

    def put(self, name: NormalizedName, document: dict[str, Any], ttl_seconds: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"expires": time.time() + ttl_seconds, "document": document})
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(payload)
            Path(temporary).replace(self._path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                Path(temporary).unlink()
            raise


class RedisFactsCache:
    """Shared by every worker of a fleet; Redis expires the keys.

    A cache, not a source of truth: while Redis is unreachable (restarting, failing over) a
    read is a miss and a write is skipped, so evaluations carry on against the index.
    """

    def __init__(self, client: Any, prefix: str = "specfleet:pypi:") -> None:
        self.client = client
        self.prefix = prefix

    def get(self, name: NormalizedName) -> dict[str, Any] | None:
        import redis

        try:
            raw = self.client.get(self.prefix + name)
        except redis.RedisError as error:
            log.warning("release-facts cache unavailable: reading the index", error=str(error))
            return None
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    def put(self, name: NormalizedName, document: dict[str, Any], ttl_seconds: int) -> None:
        import redis

        try:
            self.client.set(self.prefix + name, json.dumps(document), ex=ttl_seconds)
        except redis.RedisError as error:
            log.warning("release-facts cache unavailable: not stored", error=str(error))


class IndexClient:
    """Release facts for many packages at once, from cache or from the index."""

    def __init__(
        self,
        base_url: str = DEFAULT_INDEX_URL,
        cache: FactsCache | None = None,
        timeout_seconds: float = 10.0,
        retries: int = 2,
        concurrency: int = 8,
        ttl_seconds: int = DAY,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.cache = cache
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.concurrency = concurrency
        self.ttl_seconds = ttl_seconds
        self.transport = transport
        self.requests_made = 0  # for tests and benchmarks: how often the index was asked

    def facts(self, names: Iterable[str]) -> dict[NormalizedName, Facts]:
        wanted = sorted({canonicalize_name(name) for name in names})
        results: dict[NormalizedName, Facts] = {}
        missing: list[NormalizedName] = []
        for name in wanted:
            cached = self.cache.get(name) if self.cache is not None else None
            if cached is None:
                missing.append(name)
            else:
                results[name] = facts_from_document(name, cached)
        if missing:
            import httpx

            with (
                httpx.Client(
                    timeout=self.timeout_seconds,
                    transport=self.transport,
                    headers={"Accept": "application/json", "User-Agent": "specfleet"},
                    follow_redirects=True,
                ) as client,
                ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(missing)))) as pool,
            ):
                fetched = pool.map(lambda name: self._fetch(client, name), missing)
                for name, result in zip(missing, fetched, strict=True):
                    results[name] = result
        return results

    def _fetch(self, client: httpx.Client, name: NormalizedName) -> Facts:
        import httpx

        url = f"{self.base_url}/pypi/{name}/json"
        reason = "not asked"
        for attempt in range(self.retries + 1):
            if attempt:
                # exponential backoff with jitter so a fleet of workers does not retry in step
                time.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random()))  # noqa: S311
            self.requests_made += 1
            try:
                response = client.get(url)
            except httpx.HTTPError as error:
                reason = f"index unreachable ({type(error).__name__})"
                continue
            if response.status_code == 404:
                if self.cache is not None:
                    self.cache.put(name, {"missing": True}, MISSING_TTL_SECONDS)
                return UnknownFacts(name, f"not found on {self.base_url} (a private package?)")
            if response.status_code == 429 or response.status_code >= 500:
                reason = f"index answered {response.status_code}"
                continue
            if response.status_code != 200:
                return UnknownFacts(name, f"index answered {response.status_code}")
            try:
                document = trim_index_document(response.json())
            except (ValueError, KeyError, TypeError) as error:
                return UnknownFacts(name, f"index answered an unreadable document ({error})")
            if self.cache is not None:
                self.cache.put(name, document, self.ttl_seconds)
            return facts_from_document(name, document)
        return UnknownFacts(name, reason)


def trim_index_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what specfleet reads of a ``/pypi/NAME/json`` answer (a few KB, not MBs).

    Releases are stored sorted by version, with normalised timestamps, so that reading a
    cached document needs no sorting and no version parsing (the warm path of every check).
    """
    info = document["info"]
    releases: dict[str, dict[str, Any]] = {}
    for version, files in sorted(
        (document.get("releases") or {}).items(), key=lambda item: _version_key(item[0])
    ):
        if not files:
            continue  # a version with no files cannot be installed
        uploads = [item.get("upload_time_iso_8601") or item.get("upload_time") for item in files]
        uploaded_at = _when(min((upload for upload in uploads if upload), default=None))
        releases[version] = {
            "uploaded_at": uploaded_at.isoformat() if uploaded_at else None,
            "yanked": any(bool(item.get("yanked")) for item in files),
            "yanked_reason": next(
                (item.get("yanked_reason") for item in files if item.get("yanked")), None
            ),
            "requires_python": files[0].get("requires_python"),
        }
    return {"latest": info.get("version"), "releases": releases, "fetched_at": _now_text()}


def facts_from_document(name: NormalizedName, document: Mapping[str, Any]) -> Facts:
    if document.get("missing"):
        return UnknownFacts(name, "not found on the index (a private package?)")
    releases = tuple(
        Release(
            version=version,
            uploaded_at=_when(entry.get("uploaded_at")),
            yanked=bool(entry.get("yanked")),
            yanked_reason=entry.get("yanked_reason"),
            requires_python=entry.get("requires_python"),
        )
        for version, entry in document.get("releases", {}).items()  # stored sorted
    )
    fetched_at = _when(document.get("fetched_at")) or dt.datetime.now(dt.UTC)
    return ReleaseFacts(name, document.get("latest"), releases, fetched_at)


def _version_key(version: str) -> tuple[bool, Version]:
    parsed = _parse(version)
    return (parsed is None, parsed or Version("0"))  # unparsable versions last


def _when(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)  # Python 3.11 reads "Z" and offsets
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None
