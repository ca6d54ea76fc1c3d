"""What a policy check reports: findings, each tied to a rule and, where there is one, a line."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

RuleKind = Literal["dependency", "semgrep", "spec", "guideline"]
RuleSeverity = Literal["info", "low", "medium", "high", "critical"]
FindingStatus = Literal["fail", "error", "not-checkable"]


@dataclass(frozen=True)
class Finding:
    """One way a product does not honour a rule (or could not be checked against it).

    ``status`` is ``fail`` for a violation, ``error`` when the check itself failed (e.g.
    semgrep crashed on a file: the rest of the checks still ran), and ``not-checkable`` for
    guidelines only the planner can judge.
    """

    rule_id: str
    kind: RuleKind
    severity: RuleSeverity
    message: str
    file: str | None = None  # repository-relative
    line: int | None = None  # 1-based
    fixable: bool = False  # a deterministic remediator can fix it without an LLM
    status: FindingStatus = "fail"
    # what the finding is about, whatever line it sits on: a dependency finding's package and
    # advisory id, a code finding's matched source (normalised; see normalise_snippet)
    package: str | None = None
    advisory: str | None = None
    snippet: str | None = None

    @property
    def location(self) -> str:
        if self.file is None:
            return "-"
        return f"{self.file}:{self.line}" if self.line else self.file

    def key(self) -> tuple[str, str, str, str]:
        """Identity used to compare findings before and after a change: what it is about,
        never where it sits.

        A dependency finding is (rule, package, advisory): regenerating a lock file moves every
        pin to another line and may reorder files, and an upgraded pin that still breaks the
        same rule is the same finding, neither resolved nor introduced. A code finding is
        (rule, file, normalised snippet): an edit above it moves it without resolving it.
        Without a snippet the message stands in for it (spec and guideline findings).
        """
        if self.kind == "dependency" and self.package is not None:
            return (self.rule_id, "package", self.package, self.advisory or "")
        if self.kind == "dependency" and self.file is not None:
            return (self.rule_id, "file", self.file, "")
        what = normalise_snippet(self.snippet if self.snippet is not None else self.message)
        return (self.rule_id, "code", self.file or "", what)

    @property
    def identity(self) -> str:
        """The key as one stable string (stored with compliance rows; see migration 0006)."""
        digest = hashlib.sha256("\x1f".join(self.key()).encode()).hexdigest()
        return f"{self.rule_id}:{digest[:16]}"


def normalise_snippet(text: str) -> str:
    """Source text as a finding's identity: whitespace runs collapsed, bounded."""
    return " ".join(text.split())[:500]


def unmatched(findings: Sequence[Finding], others: Sequence[Finding]) -> tuple[Finding, ...]:
    """The failing ``findings`` that ``others`` has no counterpart for (pure).

    Counterparts have the same :meth:`Finding.key`; each is used once, so a second occurrence
    of a finding in a file is still new.
    """
    available: Counter[tuple[str, str, str, str]] = Counter(f.key() for f in others)
    result = []
    for finding in findings:
        if available[finding.key()] > 0:
            available[finding.key()] -= 1
        elif finding.status == "fail":
            result.append(finding)
    return tuple(result)
