"""OSV records: read one file's bytes, check its shape, and turn it into :class:`Advisory` values.

Pure functions shared by the offline directory source and the OSV-compatible server: the
server answers with the record exactly as stored (as JSON), the directory source answers
with the advisories derived here.

YAML is read with only ``null`` and ``true``/``false`` recognised; every other plain scalar
stays the text that was written. Unquoted versions such as ``1.10`` or ``010`` would
otherwise become the numbers 1.1 and 8, and timestamps would become ``datetime`` objects
that no longer serialise as the JSON the OSV API returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml
from packaging.utils import NormalizedName, canonicalize_name

from specfleet.core.health.advisories.interface import Advisory, RangeEvent
from specfleet.core.health.advisories.matching import fixed_versions
from specfleet.core.health.advisories.severity import severity_of

try:  # libyaml's parser is several times faster over thousands of advisories
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

PYPI = "PyPI"
EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
SUMMARY_LENGTH = 160
MAX_VALUES = 200_000  # the largest real advisory holds a few thousand


class _TextLoader(_BaseLoader):
    """Safe YAML loader that resolves only null and booleans; other scalars stay text."""


_TextLoader.yaml_implicit_resolvers = {}
_TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


@dataclass(frozen=True)
class Malformed:
    """Why a document is not a usable OSV record (reported, never raised)."""

    reason: str


@dataclass(frozen=True)
class OsvRecord:
    """One OSV record: the JSON-compatible document and the advisory per PyPI package it names."""

    id: str
    modified: str | None
    document: Mapping[str, Any]
    advisories: Mapping[NormalizedName, Advisory]


def load_document(data: bytes, *, json_format: bool) -> object | Malformed:
    """Parse a file's bytes as JSON or YAML into plain JSON-compatible values."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return Malformed(f"not UTF-8 text ({error.reason} at byte {error.start})")
    try:
        document = json.loads(text) if json_format else _load_yaml(text)
        return _Plain().convert(document)
    except json.JSONDecodeError as error:
        return Malformed(f"invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})")
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        return Malformed(f"invalid YAML: {problem}{where}")
    except RecursionError:
        return Malformed("nested too deeply")
    except _TooLarge:
        return Malformed(f"more than {MAX_VALUES} values (YAML aliases expanding?)")


def _load_yaml(text: str) -> object:
    return yaml.load(text, Loader=_TextLoader)  # noqa: S506 - _TextLoader is a safe loader


class _TooLarge(Exception):
    pass


class _Plain:
    """Copies a parsed document into plain JSON values, with a budget.

    YAML aliases let a small file describe an enormous tree ("billion laughs"); counting
    values while copying stops that before it exhausts memory. Explicit YAML tags
    (``!!timestamp``, ``!!binary``) can produce non-JSON values, which become text.
    """

    def __init__(self) -> None:
        self.remaining = MAX_VALUES

    def convert(self, value: object) -> object:
        self.remaining -= 1
        if self.remaining < 0:
            raise _TooLarge
        if isinstance(value, Mapping):
            return {str(key): self.convert(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.convert(item) for item in value]
        if value is None or isinstance(value, str | bool | int | float):
            return value
        if isinstance(value, datetime | date):
            return value.isoformat().replace("+00:00", "Z")
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)


def parse_record(document: object) -> OsvRecord | Malformed:
    """Check an OSV document's shape and derive one :class:`Advisory` per PyPI package."""
    if not isinstance(document, Mapping):
        kind = "an empty file" if document is None else f"a {type(document).__name__}"
        return Malformed(f"expected an OSV record (a mapping), found {kind}")
    record_id = document.get("id")
    if not isinstance(record_id, str) or not record_id.strip():
        return Malformed("the record has no 'id'")
    where = f"record {record_id}"
    shape = _check_shape(document)
    if shape is not None:
        return Malformed(f"{where}: {shape}")
    by_package: dict[NormalizedName, list[Mapping[str, Any]]] = {}
    for entry in document.get("affected") or ():
        package = entry["package"]
        if str(package.get("ecosystem", "")).lower() != PYPI.lower():
            continue
        by_package.setdefault(canonicalize_name(package["name"]), []).append(entry)
    advisories = {
        name: _advisory(document, record_id, name, entries) for name, entries in by_package.items()
    }
    modified = document.get("modified")
    return OsvRecord(
        id=record_id,
        modified=modified if isinstance(modified, str) else None,
        document=document,
        advisories=advisories,
    )


def _check_shape(document: Mapping[str, Any]) -> str | None:
    """The first reason the document breaks the parts of the OSV schema used here, or None."""
    for key in ("summary", "details", "modified", "published"):
        if key in document and document[key] is not None and not isinstance(document[key], str):
            return f"'{key}' must be text"
    aliases = document.get("aliases")
    if aliases is not None and not (
        isinstance(aliases, list) and all(isinstance(alias, str) for alias in aliases)
    ):
        return "'aliases' must be a list of ids"
    affected = document.get("affected")
    if affected is None:
        return None
    if not isinstance(affected, list):
        return "'affected' must be a list"
    for index, entry in enumerate(affected):
        problem = _check_affected(entry)
        if problem is not None:
            return f"affected[{index}]: {problem}"
    return None


def _check_affected(entry: object) -> str | None:
    if not isinstance(entry, Mapping):
        return "expected a mapping"
    package = entry.get("package")
    if not isinstance(package, Mapping) or not isinstance(package.get("name"), str):
        return "'package' must be a mapping with a 'name'"
    if not isinstance(package.get("ecosystem", ""), str):
        return "'package.ecosystem' must be text"
    versions = entry.get("versions")
    if versions is not None and not (
        isinstance(versions, list) and all(isinstance(v, str | int) for v in versions)
    ):
        return "'versions' must be a list of versions"
    ranges = entry.get("ranges")
    if ranges is None:
        return None
    if not isinstance(ranges, list):
        return "'ranges' must be a list"
    for index, item in enumerate(ranges):
        if not isinstance(item, Mapping) or not isinstance(item.get("type"), str):
            return f"ranges[{index}]: expected a mapping with a 'type'"
        events = item.get("events")
        if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
            return f"ranges[{index}]: 'events' must be a list of mappings"
        if item["type"] != "ECOSYSTEM":
            continue  # GIT and SEMVER events are not read, so their content is not checked
        for position, event in enumerate(events):
            kinds = [kind for kind in EVENT_KINDS if kind in event]
            if len(kinds) != 1 or not isinstance(event[kinds[0]], str | int):
                return (
                    f"ranges[{index}].events[{position}]: expected exactly one of "
                    f"{', '.join(EVENT_KINDS)} with a version"
                )
    return None


def _advisory(
    document: Mapping[str, Any],
    record_id: str,
    package: NormalizedName,
    entries: Sequence[Mapping[str, Any]],
) -> Advisory:
    ranges: list[tuple[RangeEvent, ...]] = []
    versions: set[str] = set()
    for entry in entries:
        versions.update(str(version) for version in entry.get("versions") or ())
        for item in entry.get("ranges") or ():
            if item["type"] != "ECOSYSTEM":
                continue  # GIT and SEMVER ranges do not order PyPI versions
            ranges.append(tuple(_event(event) for event in item["events"]))
    severity, score = severity_of(document, entries)
    details = str(document.get("details") or "")
    summary = str(document.get("summary") or "") or summary_line(details)
    withdrawn = document.get("withdrawn")
    return Advisory(
        id=record_id,
        package=package,
        aliases=tuple(document.get("aliases") or ()),
        summary=summary,
        severity=severity,
        cvss_score=score,
        fixed_versions=fixed_versions(ranges),
        ranges=tuple(ranges),
        versions=frozenset(versions),
        withdrawn=withdrawn is not None and withdrawn != "",
        details=details,
    )


def _event(event: Mapping[str, Any]) -> RangeEvent:
    (kind,) = (kind for kind in EVENT_KINDS if kind in event)
    return RangeEvent(**{kind: str(event[kind])})


def summary_line(details: str) -> str:
    """The first line of ``details``, cut at a word to fit one table cell."""
    line = " ".join(details.strip().split("\n\n", 1)[0].split())
    if len(line) <= SUMMARY_LENGTH:
        return line
    cut = line[: SUMMARY_LENGTH - 1].rsplit(" ", 1)[0]
    return f"{cut}…"
