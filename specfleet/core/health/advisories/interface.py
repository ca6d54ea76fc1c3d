"""Where vulnerability advisories come from: value types and the source interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from packaging.utils import NormalizedName

from specfleet.core.errors import SpecfleetError
from specfleet.core.health.advisories.matching import advisory_affects, first_fix_after

Severity = Literal["critical", "high", "medium", "low"]


@dataclass(frozen=True)
class RangeEvent:
    """One OSV range event: exactly one of introduced, fixed, last_affected, limit is set."""

    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class Advisory:
    """A known vulnerability as it applies to one package (OSV semantics)."""

    id: str  # e.g. PYSEC-2023-238
    package: NormalizedName
    aliases: tuple[str, ...] = ()  # e.g. CVE-2023-47248, GHSA-...
    summary: str = ""  # one line: the OSV summary, else the start of the details
    severity: Severity | None = None  # None when the advisory does not say
    cvss_score: float | None = None
    fixed_versions: tuple[str, ...] = ()  # every "fixed" event for this package, sorted
    # OSV ECOSYSTEM ranges (each a sequence of events) and the explicit versions list; empty
    # when the source only reports fixed versions (pip-audit), so `affects` may not know.
    ranges: tuple[tuple[RangeEvent, ...], ...] = ()
    versions: frozenset[str] = field(default_factory=frozenset)
    withdrawn: bool = False
    details: str = ""  # the full description, as the source gives it
    # Versions a source reported as affected without giving ranges: pip-audit answers for
    # the exact pin it was asked about, so that pin is known to be affected while nothing
    # is known about other versions.
    known_affected: frozenset[str] = field(default_factory=frozenset)

    def affects(self, version: str) -> bool | None:
        """True/False when the advisory's data decides it, None when it cannot tell.

        See :func:`specfleet.core.health.advisories.matching.advisory_affects` for the rules.
        """
        return advisory_affects(self, version)

    def first_fix_after(self, version: str) -> str | None:
        """The lowest fixed version above ``version``, or None when no fix is known."""
        return first_fix_after(self.fixed_versions, version)


class AdvisoryError(SpecfleetError):
    """An advisory source failed as a whole (unreadable directory, pip-audit crashed)."""


PackageVersion = tuple[NormalizedName, str]


class AdvisorySource(Protocol):
    """Answers "which advisories affect these exact versions?" for many packages at once."""

    name: str

    def advisories_for(
        self, packages: Sequence[PackageVersion]
    ) -> Mapping[PackageVersion, Sequence[Advisory]]: ...
