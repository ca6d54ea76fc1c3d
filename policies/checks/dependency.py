"""``dependency`` rules over a product's health report (pure), and the upgrade policy they imply."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from specfleet.core.health.advisories.interface import Advisory
from specfleet.core.health.report import HealthReport, PinHealth
from specfleet.core.health.upgrades import MinimumVersion, UpgradePolicy
from specfleet.policies.findings import Finding
from specfleet.policies.model import Rule, VulnerabilityThreshold

SEVERITY_ORDER = {"low": 1, "medium": 2, "high": 3, "critical": 4}


def check_dependency_rule(rule: Rule, report: HealthReport) -> list[Finding]:
    assert rule.dependency is not None
    requirement = rule.dependency
    findings: list[Finding] = []

    def finding(item: PinHealth, message: str, fixable: bool, advisory: str | None = None) -> None:
        findings.append(
            Finding(
                rule.id,
                "dependency",
                rule.severity,
                message,
                file=item.pin.file,
                line=item.pin.line,
                fixable=fixable,
                package=str(canonicalize_name(item.pin.name)),
                advisory=advisory,
            )
        )

    minimums = _minimums(rule)
    banned = _banned(rule)
    for item in report.pins:
        current = item.current
        for minimum in minimums:
            if minimum.package == item.pin.name and (
                current is None or current not in minimum.specifier
            ):
                finding(
                    item,
                    f"{item.pin.name} {current or item.pin.specifier} does not satisfy "
                    f"{minimum.package}{minimum.specifier}",
                    current is not None,
                )
        for ban in banned:
            if ban.name == item.pin.name and (
                current is None or not ban.specifier or current in ban.specifier
            ):
                shown = f"{ban.name}{ban.specifier}" if ban.specifier else ban.name
                finding(
                    item,
                    f"{item.pin.name} {current or ''} is banned ({shown})".replace("  ", " "),
                    bool(ban.specifier) and current is not None,
                )
        if requirement.max_vulnerability_severity is not None:
            for advisory in _over_threshold(
                item.advisories, requirement.max_vulnerability_severity
            ):
                severity = advisory.severity or "unknown severity"
                fixes = ", ".join(advisory.fixed_versions) or "no fix published"
                finding(
                    item,
                    f"{item.pin.name} {current} has {advisory.id} ({severity}; fixed in {fixes})",
                    bool(advisory.fixed_versions),
                    advisory.id,
                )
        if (
            requirement.max_pin_age_days is not None
            and item.age_days is not None
            and (item.age_days > requirement.max_pin_age_days)
        ):
            finding(
                item,
                f"{item.pin.name} {current} was released {item.age_days} days ago "
                f"(at most {requirement.max_pin_age_days})",
                False,
            )
        if (
            requirement.min_release_age_days is not None
            and item.age_days is not None
            and (item.age_days < requirement.min_release_age_days)
        ):
            finding(
                item,
                f"{item.pin.name} {current} is only {item.age_days} days old "
                f"(adopt releases after {requirement.min_release_age_days} days)",
                False,
            )
    return findings


def _over_threshold(
    advisories: Iterable[Advisory], threshold: VulnerabilityThreshold
) -> list[Advisory]:
    if threshold == "any":
        return list(advisories)
    # an advisory that does not state its severity counts: absence of evidence is not safety
    limit = SEVERITY_ORDER[threshold]
    return [
        advisory
        for advisory in advisories
        if advisory.severity is None or SEVERITY_ORDER[advisory.severity] >= limit
    ]


def _minimums(rule: Rule) -> list[MinimumVersion]:
    assert rule.dependency is not None
    found = []
    for name, text in rule.dependency.minimum_versions.items():
        try:
            found.append(
                MinimumVersion(
                    canonicalize_name(name),
                    SpecifierSet(text),
                    rule.id,
                    allow_major=rule.dependency.allow_major,
                )
            )
        except InvalidSpecifier:
            continue  # refused when the pack is loaded; see specfleet.policies.packs
    return found


def _banned(rule: Rule) -> list[Requirement]:
    assert rule.dependency is not None
    found = []
    for text in rule.dependency.banned:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        requirement.name = canonicalize_name(requirement.name)
        found.append(requirement)
    return found


def upgrade_policy(rules: Iterable[Rule]) -> UpgradePolicy:
    """What the dependency rules that apply to a product ask of its remediation."""
    dependency_rules = [rule for rule in rules if rule.dependency is not None]
    minimums = tuple(minimum for rule in dependency_rules for minimum in _minimums(rule))
    ages = [
        rule.dependency.min_release_age_days or 0 for rule in dependency_rules if rule.dependency
    ]
    return UpgradePolicy(
        allow_major_for_security=any(
            rule.dependency.allow_major and rule.dependency.max_vulnerability_severity is not None
            for rule in dependency_rules
            if rule.dependency
        ),
        min_release_age_days=max(ages, default=0),
        minimums=minimums,
    )
