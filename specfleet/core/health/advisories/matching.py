"""Does an advisory affect a version? OSV matching for the PyPI ecosystem, as pure functions.

The rules are the OSV schema's evaluation algorithm with PEP 440 ordering:

- a version is affected when it is in the ``versions`` list of an ``affected`` entry, or
  inside one of its ``ECOSYSTEM`` ranges (either suffices);
- a range's events are sorted by version (``introduced: "0"`` first, a ``limit`` of ``*``
  last) and walked: ``introduced`` opens an interval, ``fixed`` closes it before the fixed
  version, ``last_affected`` closes it after that version; ``limit`` events bound the range
  from above;
- ``GIT`` and ``SEMVER`` ranges say nothing about PyPI versions and never reach this module
  (:mod:`specfleet.core.health.advisories.osv_record` keeps only ``ECOSYSTEM`` ranges);
- withdrawn advisories never match.

Versions that PEP 440 cannot parse are handled conservatively rather than skipped: a range
holding such an event cannot decide, so :func:`advisory_affects` answers ``None`` ("cannot
tell") unless the ``versions`` list or another range says "affected". Skipping the event
instead would silently open or close an interval and could hide a vulnerability. The
``versions`` list is compared by exact text first, so unparsable entries still match a pin
written the same way. A range without any ``introduced`` event (invalid OSV) is read as
starting at ``"0"``, for the same reason.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from specfleet.core.health.advisories.interface import Advisory, RangeEvent


@functools.lru_cache(maxsize=8192)
def parse_version(text: str) -> Version | None:
    """PEP 440 parse, None when the text is not a version (cached: the same few recur)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_versions_list(version: str, versions: Collection[str]) -> bool:
    """Whether ``version`` is one of ``versions``, by exact text or by PEP 440 equality."""
    if version in versions:
        return True
    parsed = parse_version(version)
    if parsed is None:
        return False
    return any(parse_version(listed) == parsed for listed in versions)


# Sort keys: "0" before every version, then versions, then an unbounded limit ("*").
_Bound = tuple[int, Version | None]
_ZERO: _Bound = (0, None)
_UNBOUNDED: _Bound = (2, None)
# When two events name the same version, open before closing: "introduced 1.0, fixed 1.0"
# then leaves 1.0 unaffected, as the OSV walk does with introduced listed first.
_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2}


def _event(event: RangeEvent) -> tuple[str, str] | None:
    for kind in ("introduced", "fixed", "last_affected", "limit"):
        value = getattr(event, kind)
        if value is not None:
            return kind, value
    return None


def _bound(kind: str, text: str) -> _Bound | None:
    if kind == "introduced" and text == "0":
        return _ZERO
    if kind == "limit" and "*" in text:
        return _UNBOUNDED
    parsed = parse_version(text)
    return None if parsed is None else (1, parsed)


def _at_or_above(version: Version, bound: _Bound) -> bool:
    if bound[0] != 1:
        return bound == _ZERO
    assert bound[1] is not None
    return version >= bound[1]


def _above(version: Version, bound: _Bound) -> bool:
    if bound[0] != 1:
        return bound == _ZERO
    assert bound[1] is not None
    return version > bound[1]


def range_includes(version: Version, events: Sequence[RangeEvent]) -> bool | None:
    """Whether one ECOSYSTEM range includes ``version``; None when an event is unparsable."""
    walk: list[tuple[_Bound, int, str]] = []
    limits: list[_Bound] = []
    for event in events:
        named = _event(event)
        if named is None:
            continue
        kind, text = named
        bound = _bound(kind, text)
        if bound is None:
            return None
        if kind == "limit":
            limits.append(bound)
        else:
            walk.append((bound, _EVENT_ORDER[kind], kind))
    if not any(kind == "introduced" for _, _, kind in walk):
        walk.append((_ZERO, _EVENT_ORDER["introduced"], "introduced"))
    if limits and not any(not _at_or_above(version, limit) for limit in limits):
        return False
    affected = False
    for bound, _, kind in sorted(walk, key=_walk_key):
        if kind == "introduced" and _at_or_above(version, bound):
            affected = True
        elif (kind == "fixed" and _at_or_above(version, bound)) or (
            kind == "last_affected" and _above(version, bound)
        ):
            affected = False
    return affected


def _walk_key(item: tuple[_Bound, int, str]) -> tuple[int, Version, int]:
    (rank, parsed), order, _ = item
    # Version("0") stands in for the special bounds; the rank decides before it is compared.
    return rank, parsed if parsed is not None else Version("0"), order


def is_affected(
    version: str,
    ranges: Iterable[Sequence[RangeEvent]],
    versions: Collection[str] = (),
) -> bool | None:
    """OSV ``IsVulnerable`` for one package: the versions list, then every ECOSYSTEM range.

    True when the list or any range includes ``version``; None when no evidence says so but
    a range could not be evaluated (an unparsable event, or an unparsable ``version``);
    False otherwise.
    """
    if in_versions_list(version, versions):
        return True
    parsed = parse_version(version)
    undecided = False
    for events in ranges:
        if parsed is None:
            undecided = True
            continue
        included = range_includes(parsed, events)
        if included:
            return True
        if included is None:
            undecided = True
    return None if undecided else False


def advisory_affects(advisory: Advisory, version: str) -> bool | None:
    """Whether ``advisory`` affects ``version`` of its package (see the module docstring).

    A withdrawn advisory affects nothing. A version a source reported as affected
    (``known_affected``) is affected. An advisory with neither ranges nor a versions list
    (pip-audit's answers) cannot tell for any other version.
    """
    if advisory.withdrawn:
        return False
    if in_versions_list(version, advisory.known_affected):
        return True
    if not advisory.ranges and not advisory.versions:
        return None
    return is_affected(version, advisory.ranges, advisory.versions)


def fixed_versions(ranges: Iterable[Sequence[RangeEvent]]) -> tuple[str, ...]:
    """Every ``fixed`` version of the ranges, once each, in PEP 440 order.

    Versions PEP 440 cannot parse come last, in text order, so none is lost.
    """
    found = {event.fixed for events in ranges for event in events if event.fixed is not None}
    return sort_versions(found)


def sort_versions(versions: Iterable[str]) -> tuple[str, ...]:
    """Distinct versions in PEP 440 order, unparsable ones last in text order."""
    parsed = []
    unparsable = []
    for text in set(versions):
        value = parse_version(text)
        if value is None:
            unparsable.append(text)
        else:
            parsed.append((value, text))
    parsed.sort()
    return tuple(text for _, text in parsed) + tuple(sorted(unparsable))


def first_fix_after(fixed: Iterable[str], version: str) -> str | None:
    """The lowest fixed version strictly above ``version``: the upgrade that clears it.

    None when ``version`` is unparsable or no fixed version lies above it.
    """
    current = parse_version(version)
    if current is None:
        return None
    candidates = [
        (value, text)
        for text in fixed
        if (value := parse_version(text)) is not None and value > current
    ]
    return min(candidates)[1] if candidates else None
