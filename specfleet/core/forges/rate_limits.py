"""Who may open a merge request now, and in what order: the rate-limit decision (pure).

A policy publication can affect thousands of products at once; opening thousands of merge
requests in the same minute buries the owners (Renovate's ``prHourlyLimit`` and
``prConcurrentLimit`` exist for the same reason). Two limits apply to *new* merge requests (an
update in place of an open one is never held back):

* ``hourly``: merge requests opened fleet-wide in the last hour;
* ``open_per_owner``: merge requests open at the same time per owner e-mail (a product with
  several owners counts for each of them).

Proposals over a limit wait (``deferred``) and go out, as capacity frees, in priority order:
security fixes first, then policy rules by severity (critical first), then plain freshness
updates; within a tier the longest-waiting first, then by product id so the order is total.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
# advisory identifiers as OSV and pip-audit spell them; rule ids (ORG-...) are not among them
ADVISORY_ID = re.compile(r"^(PYSEC|GHSA|CVE|OSV|PYUP|MAL)-", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """The limits in force; ``None`` means unlimited."""

    hourly: int | None = None
    open_per_owner: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.hourly is None and self.open_per_owner is None

    def tightened_by(self, other: Limits) -> Limits:
        """The stricter of two sources (settings and the policy set) for each limit."""
        return Limits(
            _stricter(self.hourly, other.hourly),
            _stricter(self.open_per_owner, other.open_per_owner),
        )


def _stricter(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True)
class Priority:
    """What a proposal fixes, as far as ordering needs it."""

    security: bool = False
    severity: str | None = None  # the highest severity among the policy rules it answers
    waiting_since: dt.datetime | None = None

    @property
    def tier(self) -> str:
        if self.security:
            return "security fix"
        if self.severity is not None:
            return f"policy ({self.severity})"
        return "freshness"

    def sort_key(self) -> tuple[int, int, float]:
        since = self.waiting_since.timestamp() if self.waiting_since else 0.0
        return (0 if self.security else 1, -SEVERITY_RANK.get(self.severity or "", -1), since)


@dataclass(frozen=True)
class Waiting:
    """A proposal that would open a new merge request."""

    proposal_id: int
    product_id: str
    owners: tuple[str, ...]
    priority: Priority = field(default_factory=Priority)


@dataclass(frozen=True)
class Capacity:
    """What is already used: merge requests opened in the last hour, open ones per owner."""

    opened_last_hour: int = 0
    open_by_owner: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    """The decision: who opens now (in order) and who waits, each with the reason."""

    admitted: tuple[Waiting, ...]
    deferred: tuple[tuple[Waiting, str], ...]

    def reason_for(self, proposal_id: int) -> str | None:
        return next((why for w, why in self.deferred if w.proposal_id == proposal_id), None)


def release_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """The order proposals go out in (see the module docstring)."""
    return sorted(waiting, key=lambda w: (*w.priority.sort_key(), w.product_id, w.proposal_id))


def admit(waiting: Sequence[Waiting], capacity: Capacity, limits: Limits) -> Admission:
    """Take the proposals in priority order while both limits leave room."""
    used_hour = capacity.opened_last_hour
    open_by_owner: Counter[str] = Counter({k.lower(): v for k, v in capacity.open_by_owner.items()})
    admitted: list[Waiting] = []
    deferred: list[tuple[Waiting, str]] = []
    for candidate in release_order(waiting):
        reason = _over_limit(candidate, used_hour, open_by_owner, limits)
        if reason is not None:
            deferred.append((candidate, reason))
            continue
        admitted.append(candidate)
        used_hour += 1
        open_by_owner.update(owner.lower() for owner in set(candidate.owners))
    return Admission(tuple(admitted), tuple(deferred))


def _over_limit(
    candidate: Waiting, used_hour: int, open_by_owner: Mapping[str, int], limits: Limits
) -> str | None:
    if limits.hourly is not None and used_hour >= limits.hourly:
        return f"the fleet-wide limit of {limits.hourly} new merge requests per hour is reached"
    if limits.open_per_owner is not None:
        for owner in sorted(set(candidate.owners)):
            if open_by_owner.get(owner.lower(), 0) >= limits.open_per_owner:
                return (
                    f"{owner} already has {limits.open_per_owner} open merge requests "
                    "(the limit per owner)"
                )
    return None


def priority_of(
    change_reasons: Iterable[str],
    rule_ids: Iterable[str],
    rule_severity: Mapping[str, str],
    waiting_since: dt.datetime | None = None,
) -> Priority:
    """The priority of a proposal from the ids its changes cite (``why`` texts are
    ``ID: detail; ID: detail``) and the rules it claims, with the policy set's severities."""
    cited: set[str] = set(rule_ids)
    for why in change_reasons:
        for part in why.split(";"):
            ident = part.strip().split(":", 1)[0].strip()
            if ident:
                cited.add(ident)
    security = any(ADVISORY_ID.match(ident) for ident in cited)
    severities = [rule_severity[i] for i in cited if i in rule_severity]
    highest = max(severities, key=lambda s: SEVERITY_RANK.get(s, -1)) if severities else None
    return Priority(security, highest, waiting_since)
