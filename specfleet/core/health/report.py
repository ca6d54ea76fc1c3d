"""A product's dependency health: each pin with its release facts and advisories.

:func:`assess` is a pure function of the pins, the index facts, the advisories and the date,
so a report can be recomputed and compared; :func:`check_health` does the I/O around it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from specfleet.core.health.advisories.interface import Advisory, AdvisorySource, PackageVersion
from specfleet.core.health.pins import Pin, PinProblem, read_pins
from specfleet.core.health.releases import Facts, IndexClient, UnknownFacts

if TYPE_CHECKING:
    from specfleet.core.spec.model import Spec

SupportStatus = Literal["supported", "security-only", "end-of-life", "unknown"]

# CPython release schedule (PEPs 596, 619, 664, 693, 719, 745): end of bugfix releases and
# end of life. Dates of the 2026+ milestones follow the PEPs' planned schedules.
PYTHON_SCHEDULE: dict[str, tuple[dt.date, dt.date]] = {
    "3.8": (dt.date(2021, 5, 3), dt.date(2024, 10, 7)),
    "3.9": (dt.date(2022, 5, 17), dt.date(2025, 10, 31)),
    "3.10": (dt.date(2023, 4, 5), dt.date(2026, 10, 31)),
    "3.11": (dt.date(2024, 4, 2), dt.date(2027, 10, 31)),
    "3.12": (dt.date(2025, 4, 8), dt.date(2028, 10, 31)),
    "3.13": (dt.date(2026, 10, 1), dt.date(2029, 10, 31)),
    "3.14": (dt.date(2027, 10, 1), dt.date(2030, 10, 31)),
}


@dataclass(frozen=True)
class RuntimeSupport:
    runtime: str
    status: SupportStatus
    end_of_life: dt.date | None = None


@dataclass(frozen=True)
class PinHealth:
    """One pin as the world sees it today."""

    pin: Pin
    current: str | None  # the pinned version; None for a range
    latest: str | None
    released_at: dt.datetime | None
    age_days: int | None
    yanked: bool
    advisories: tuple[Advisory, ...]
    notes: tuple[str, ...] = ()  # why a fact is unknown, or what else a reader should know

    @property
    def vulnerable(self) -> bool:
        return bool(self.advisories)

    @property
    def outdated(self) -> bool:
        return _older(self.current, self.latest)

    @property
    def fixed_in(self) -> str | None:
        """Lowest version named as fixing every advisory, from the advisories alone."""
        candidates = []
        for advisory in self.advisories:
            fixes = [v for v in advisory.fixed_versions if _older(self.current, v)]
            if not fixes:
                return None
            candidates.append(min(fixes, key=_sort_key))
        return max(candidates, key=_sort_key) if candidates else None


@dataclass(frozen=True)
class HealthReport:
    product_id: str
    runtime: RuntimeSupport
    pins: tuple[PinHealth, ...]
    problems: tuple[PinProblem, ...]
    advisory_source: str
    checked_on: dt.date
    files: tuple[str, ...] = field(default=())

    @property
    def vulnerable(self) -> tuple[PinHealth, ...]:
        return tuple(item for item in self.pins if item.vulnerable)


def runtime_support(runtime: str, today: dt.date) -> RuntimeSupport:
    version = runtime.removeprefix("python")
    schedule = PYTHON_SCHEDULE.get(version)
    if schedule is None:
        return RuntimeSupport(runtime, "unknown")
    bugfix_end, end_of_life = schedule
    if today > end_of_life:
        status: SupportStatus = "end-of-life"
    elif today > bugfix_end:
        status = "security-only"
    else:
        status = "supported"
    return RuntimeSupport(runtime, status, end_of_life)


def assess(
    product_id: str,
    runtime: str,
    pins: Sequence[Pin],
    problems: Sequence[PinProblem],
    facts: Mapping[NormalizedName, Facts],
    advisories: Mapping[PackageVersion, Sequence[Advisory]],
    advisory_source: str,
    today: dt.date,
    files: Sequence[str] = (),
) -> HealthReport:
    """Combine pins, index facts and advisories into a report (pure)."""
    return HealthReport(
        product_id=product_id,
        runtime=runtime_support(runtime, today),
        pins=tuple(_pin_health(pin, facts.get(pin.name), advisories, today) for pin in pins),
        problems=tuple(problems),
        advisory_source=advisory_source,
        checked_on=today,
        files=tuple(files),
    )


def _pin_health(
    pin: Pin,
    facts: Facts | None,
    advisories: Mapping[PackageVersion, Sequence[Advisory]],
    today: dt.date,
) -> PinHealth:
    current = pin.version
    notes: list[str] = []
    if current is None:
        notes.append(f"not an exact pin ({pin.specifier or 'any version'}); advisories not checked")
    found = tuple(advisories.get((pin.name, current), ())) if current else ()
    if isinstance(facts, UnknownFacts) or facts is None:
        notes.append(facts.reason if facts else "no index facts")
        return PinHealth(pin, current, None, None, None, False, found, tuple(notes))
    release = facts.release(current) if current else None
    if current and release is None:
        notes.append(f"{current} is not a release of {pin.name} on the index")
    released_at = release.uploaded_at if release else None
    age = (today - released_at.date()).days if released_at else None
    yanked = bool(release and release.yanked)
    if yanked and release is not None:
        notes.append(f"yanked: {release.yanked_reason or 'no reason given'}")
    return PinHealth(pin, current, facts.latest, released_at, age, yanked, found, tuple(notes))


def check_health(
    repo: Path,
    spec: Spec,
    index: IndexClient,
    source: AdvisorySource,
    today: dt.date | None = None,
) -> HealthReport:
    """Read the product's pins, ask the index and the advisory source, and assess."""
    pinset = read_pins(repo, spec.implementation.dependencies)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    facts = index.facts(pin.name for pin in pinset.pins)
    advisories = source.advisories_for(exact) if exact else {}
    return assess(
        spec.id,
        spec.implementation.runtime,
        pinset.pins,
        pinset.problems,
        facts,
        advisories,
        source.name,
        today or dt.date.today(),
        pinset.files,
    )


def _sort_key(version: str) -> tuple[int, Version]:
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, Version("0"))


def _older(current: str | None, other: str | None) -> bool:
    if current is None or other is None:
        return False
    try:
        return Version(current) < Version(other)
    except InvalidVersion:
        return False
