"""How bad is an advisory? Severity from OSV ``severity`` entries and database labels.

Order of evidence, best first:

1. ``CVSS_V3`` vectors: the base score is computed with the CVSS v3.1 specification's
   formula (section 7.1, including its ``Roundup``; v3.0 vectors use the same equations)
   and mapped to the v3 qualitative scale: critical >= 9.0, high >= 7.0, medium >= 4.0,
   low > 0. A score of 0.0 ("none") is no severity. With several vectors the highest wins.
2. ``database_specific.severity`` labels (GitHub's CRITICAL / HIGH / MODERATE / LOW; also
   MEDIUM), used for ``CVSS_V4`` and other vectors this module does not score.
3. Otherwise unknown: ``None``.

Malformed vectors are ignored (they fall through to the next kind of evidence), never
raised: one advisory's odd data must not stop a report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from specfleet.core.health.advisories.interface import Severity

# CVSS v3.1 specification, section 7.4 (metric values).
_ATTACK_VECTOR = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_ATTACK_COMPLEXITY = {"L": 0.77, "H": 0.44}
_PRIVILEGES_UNCHANGED = {"N": 0.85, "L": 0.62, "H": 0.27}
_PRIVILEGES_CHANGED = {"N": 0.85, "L": 0.68, "H": 0.5}
_USER_INTERACTION = {"N": 0.85, "R": 0.62}
_IMPACT = {"H": 0.56, "L": 0.22, "N": 0.0}
_SCOPE = ("U", "C")
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")
_LABELS: dict[str, Severity] = {
    "critical": "critical",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
}


def _roundup(value: float) -> float:
    """CVSS v3.1 Appendix A ``Roundup``: the smallest one-decimal number >= value.

    Working in integers avoids float artefacts such as 4.000000000000001 rounding to 4.1.
    """
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def _base_metrics(vector: str) -> dict[str, str] | None:
    prefix, _, rest = vector.strip().partition("/")
    if prefix not in ("CVSS:3.0", "CVSS:3.1") or not rest:
        return None
    metrics: dict[str, str] = {}
    for part in rest.split("/"):
        name, sep, value = part.partition(":")
        if not sep or not value or name in metrics:
            return None
        metrics[name] = value
    # temporal and environmental metrics may follow; the base score ignores them
    if any(name not in metrics for name in _BASE_METRICS):
        return None
    return metrics


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/v3.1 base score of ``vector``; None when it is not a valid v3 vector."""
    metrics = _base_metrics(vector)
    if metrics is None:
        return None
    scope = metrics["S"]
    privileges = _PRIVILEGES_CHANGED if scope == "C" else _PRIVILEGES_UNCHANGED
    try:
        attack_vector = _ATTACK_VECTOR[metrics["AV"]]
        complexity = _ATTACK_COMPLEXITY[metrics["AC"]]
        privilege = privileges[metrics["PR"]]
        interaction = _USER_INTERACTION[metrics["UI"]]
        confidentiality = _IMPACT[metrics["C"]]
        integrity = _IMPACT[metrics["I"]]
        availability = _IMPACT[metrics["A"]]
    except KeyError:
        return None
    if scope not in _SCOPE:
        return None
    impact_sub_score = 1 - (1 - confidentiality) * (1 - integrity) * (1 - availability)
    if scope == "U":
        impact = 6.42 * impact_sub_score
    else:
        impact = 7.52 * (impact_sub_score - 0.029) - 3.25 * (impact_sub_score - 0.02) ** 15
    exploitability = 8.22 * attack_vector * complexity * privilege * interaction
    if impact <= 0:
        return 0.0
    if scope == "U":
        return _roundup(min(impact + exploitability, 10))
    return _roundup(min(1.08 * (impact + exploitability), 10))


def severity_for_score(score: float) -> Severity | None:
    """The CVSS v3 qualitative rating of a score; None for 0.0 ("none")."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0:
        return "low"
    return None


def severity_from_label(label: object) -> Severity | None:
    """A database's severity word (GitHub's MODERATE is medium); None when unknown."""
    if not isinstance(label, str):
        return None
    return _LABELS.get(label.strip().lower())


def severity_of(
    document: Mapping[str, Any], affected: Iterable[Mapping[str, Any]] = ()
) -> tuple[Severity | None, float | None]:
    """Severity and CVSS v3 base score of an OSV record, for the given ``affected`` entries.

    Entries in ``affected`` may carry their own ``severity`` list (OSV 1.5+); they count
    with the record's. Returns ``(None, None)`` when nothing usable is present.
    """
    entries: list[object] = []
    labels: list[object] = []
    for holder in (document, *affected):
        severities = holder.get("severity")
        if isinstance(severities, list):
            entries.extend(severities)
        specific = holder.get("database_specific")
        if isinstance(specific, Mapping):
            labels.append(specific.get("severity"))
    scores = [
        score
        for entry in entries
        if isinstance(entry, Mapping)
        and entry.get("type") == "CVSS_V3"
        and isinstance(entry.get("score"), str)
        and (score := cvss3_base_score(entry["score"])) is not None
    ]
    if scores:
        best = max(scores)
        return severity_for_score(best), best
    for label in labels:
        severity = severity_from_label(label)
        if severity is not None:
            return severity, None
    return None, None
