"""Check one product against a policy set: every applicable rule, each kind by its checker.

Rules are grouped by kind so each tool runs once: all Semgrep rules of the product go into
one semgrep invocation. A checker that fails (semgrep crashing, say) becomes findings of
status ``error`` for its rules; the other kinds still run. The result says, per rule,
whether the product passes, fails, is out of the rule's scope, or could not be judged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from specfleet.core.errors import SpecfleetError
from specfleet.core.health.report import HealthReport
from specfleet.core.spec.model import Spec
from specfleet.core.yamldoc import field_positions, safe_load_bounded
from specfleet.policies.checks.dependency import check_dependency_rule
from specfleet.policies.checks.spec import check_spec_rule
from specfleet.policies.findings import Finding
from specfleet.policies.model import Rule

RuleStatus = Literal["pass", "fail", "not-applicable", "unknown"]
SemgrepRunner = Callable[[Path, Sequence[Rule], Mapping[str, str]], Sequence[Finding]]


@dataclass(frozen=True)
class ProductCheck:
    """The findings of one product against one policy set, and each rule's status."""

    product_id: str
    policy_version: int | None
    findings: tuple[Finding, ...]
    statuses: Mapping[str, RuleStatus]
    checked_at: dt.datetime

    def findings_of(self, rule_id: str) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if finding.rule_id == rule_id)


@dataclass(frozen=True)
class Subject:
    """What a check is about: a product with its spec, or any checkout or dependency file.

    Without a spec the rules are scoped by the directory's name and the Python target the
    dependency files state; spec rules cannot be judged, and a lone dependency file has no
    code for Semgrep rules to read.
    """

    product_id: str
    tags: tuple[str, ...] = ()
    runtime: str | None = None
    spec: Spec | None = None
    spec_file: str | None = None
    has_code: bool = True

    @classmethod
    def of_spec(cls, spec: Spec, spec_file: str) -> Subject:
        return cls(spec.id, tuple(spec.tags), spec.implementation.runtime, spec, spec_file)


def applicable(
    rules: Sequence[Rule], subject: Spec | Subject, today: dt.date
) -> tuple[list[Rule], list[Rule]]:
    """Split rules into those that apply to the product today and those that do not."""
    if isinstance(subject, Spec):
        subject = Subject.of_spec(subject, "")
    applies: list[Rule] = []
    skipped: list[Rule] = []
    for rule in rules:
        in_scope = rule.scope.covers(subject.product_id, list(subject.tags), subject.runtime)
        (applies if in_scope and rule.effective <= today else skipped).append(rule)
    return applies, skipped


def check_product(
    repo: Path,
    spec: Spec,
    spec_file: str,
    rules: Sequence[Rule],
    semgrep_files: Mapping[str, str],
    health: HealthReport | None,
    run_semgrep: SemgrepRunner | None,
    policy_version: int | None = None,
    now: dt.datetime | None = None,
) -> ProductCheck:
    return check_subject(
        repo,
        Subject.of_spec(spec, spec_file),
        rules,
        semgrep_files,
        health,
        run_semgrep,
        policy_version,
        now,
    )


def check_subject(
    repo: Path,
    subject: Subject,
    rules: Sequence[Rule],
    semgrep_files: Mapping[str, str],
    health: HealthReport | None,
    run_semgrep: SemgrepRunner | None,
    policy_version: int | None = None,
    now: dt.datetime | None = None,
) -> ProductCheck:
    """Every applicable rule of ``rules`` judged on ``repo``, each kind by its checker."""
    moment = now or dt.datetime.now(dt.UTC)
    applies, skipped = applicable(rules, subject, moment.date())
    if not subject.has_code:
        skipped += [rule for rule in applies if rule.kind == "semgrep"]
        applies = [rule for rule in applies if rule.kind != "semgrep"]
    findings: list[Finding] = []
    unknown: set[str] = set()
    spec, spec_file = subject.spec, subject.spec_file
    positions = field_positions((repo / spec_file).read_bytes()) if spec and spec_file else {}
    for rule in applies:
        if rule.kind == "spec":
            if spec is None or spec_file is None:
                unknown.add(rule.id)
                findings.append(
                    Finding(
                        rule.id,
                        "spec",
                        rule.severity,
                        "no dataproduct.yaml here: a spec rule needs one "
                        "(`specfleet spec init` drafts it)",
                        status="not-checkable",
                    )
                )
            else:
                findings.extend(check_spec_rule(rule, spec, spec_file, positions))
        elif rule.kind == "dependency":
            if health is None:
                unknown.add(rule.id)
                findings.append(_error(rule, "no dependency health report was available"))
            else:
                findings.extend(check_dependency_rule(rule, health))
        elif rule.kind == "guideline":
            unknown.add(rule.id)
            findings.append(
                Finding(
                    rule.id,
                    "guideline",
                    rule.severity,
                    "a guideline: judged by the LLM planner, not checked mechanically",
                    status="not-checkable",
                )
            )
    semgrep_rules = [rule for rule in applies if rule.kind == "semgrep"]
    if semgrep_rules:
        if run_semgrep is None:
            findings.extend(_error(rule, "semgrep checks were not run") for rule in semgrep_rules)
        else:
            try:
                findings.extend(run_semgrep(repo, semgrep_rules, semgrep_files))
            except SpecfleetError as error:
                findings.extend(_error(rule, f"semgrep failed: {error}") for rule in semgrep_rules)
    statuses: dict[str, RuleStatus] = {rule.id: "not-applicable" for rule in skipped}
    for rule in applies:
        own = [finding for finding in findings if finding.rule_id == rule.id]
        if any(finding.status == "fail" for finding in own):
            statuses[rule.id] = "fail"
        elif own or rule.id in unknown:
            statuses[rule.id] = "unknown"  # the check could not run, or only a person can judge
        else:
            statuses[rule.id] = "pass"
    return ProductCheck(subject.product_id, policy_version, tuple(findings), statuses, moment)


def _error(rule: Rule, message: str) -> Finding:
    return Finding(rule.id, rule.kind, rule.severity, message, status="error")


def semgrep_documents(rules: Sequence[Rule], semgrep_files: Mapping[str, str]) -> dict[str, Any]:
    """Each Semgrep rule's parsed document, by rule id (parsed from the stored text)."""
    documents = {}
    for rule in rules:
        if rule.semgrep is not None and rule.semgrep.file in semgrep_files:
            documents[rule.id] = safe_load_bounded(
                semgrep_files[rule.semgrep.file], rule.semgrep.file
            )
    return documents


def run_semgrep_rules(
    repo: Path, rules: Sequence[Rule], semgrep_files: Mapping[str, str], timeout_seconds: int = 120
) -> list[Finding]:
    """The :data:`SemgrepRunner` of the real semgrep CLI: all rules in one invocation."""
    from specfleet.policies.checks.semgrep import SemgrepRuleSet, check_semgrep

    documents = semgrep_documents(rules, semgrep_files)
    rule_sets = [
        SemgrepRuleSet.from_document(
            rule.id,
            rule.severity,
            rule.semgrep.file if rule.semgrep else rule.id,
            documents[rule.id],
        )
        for rule in rules
        if rule.id in documents
    ]
    return list(check_semgrep(repo, rule_sets, timeout_seconds=timeout_seconds).findings)
