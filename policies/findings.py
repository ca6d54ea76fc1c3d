"""What a policy check reports: findings, each tied to a rule and, where there is one, a line."""

from __future__ import annotations

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

    @property
    def location(self) -> str:
        if self.file is None:
            return "-"
        return f"{self.file}:{self.line}" if self.line else self.file

    def key(self) -> tuple[str, str | None, int | None, str]:
        """Identity used to compare findings before and after a change.

        A dependency finding's message names the pinned version ("pyarrow 14.0.1 was released
        1110 days ago"); its pin's file and line identify it, so an upgraded pin that still
        breaks the same rule is the same finding, neither resolved nor introduced.
        """
        if self.kind == "dependency" and self.file is not None:
            return (self.rule_id, self.file, self.line, "")
        return (self.rule_id, self.file, self.line, self.message)


def unmatched(findings: Sequence[Finding], others: Sequence[Finding]) -> tuple[Finding, ...]:
    """The failing ``findings`` that ``others`` has no counterpart for (pure).

    Same key first; then, for code findings, the same rule, file and message at another
    line: an edit above a finding moves it without resolving it, and without this the
    moved finding would read as one resolved and one introduced. Each counterpart is used
    once, so a second occurrence of a finding in a file is still new.
    """
    exact: Counter[tuple[str, str | None, int | None, str]] = Counter(f.key() for f in others)
    loose: Counter[tuple[str, str | None, str]] = Counter()
    left: list[Finding] = []
    for finding in findings:
        if exact[finding.key()] > 0:
            exact[finding.key()] -= 1
        else:
            left.append(finding)
    for key, count in exact.items():
        if count > 0 and key[3]:  # unused counterparts, by rule, file and message
            loose[(key[0], key[1], key[3])] += count
    result = []
    for finding in left:
        moved = (finding.rule_id, finding.file, finding.message)
        if finding.file is not None and finding.kind != "dependency" and loose[moved] > 0:
            loose[moved] -= 1
        elif finding.status == "fail":
            result.append(finding)
    return tuple(result)
