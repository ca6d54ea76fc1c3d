"""Choose the version each vulnerable or policy-violating pin should move to, without an LLM.

The choice follows what Renovate and Dependabot users expect, made explicit as policy:
- a vulnerable pin moves to the *lowest* release that fixes every advisory against it (the
  smallest change that removes the risk);
- a pin below a policy's minimum moves to the lowest release the minimum admits;
- a pin under a currency policy moves to the *latest* allowed release;
- never to a yanked or pre-release, never to a release whose ``requires_python`` excludes
  the product's runtime, never to one younger than the minimum release age, and never across
  a major version unless the policy allows it (for 0.x, a minor step counts as major).

Every change carries its reasons (advisory ids, rule ids); a pin that needs a change but has
no acceptable target is reported as blocked with the reason, never silently skipped.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from specfleet.core.health.advisories.interface import Advisory
from specfleet.core.health.pins import PinSet, RewritePlan, plan_rewrites, write_rewrites
from specfleet.core.health.releases import Facts, Release, ReleaseFacts
from specfleet.core.health.report import HealthReport, PinHealth
from specfleet.core.health.upgrades import UpgradePolicy


@dataclass(frozen=True)
class Reason:
    kind: Literal["advisory", "policy"]
    id: str  # advisory id (PYSEC-...) or rule id (ORG-PY-004)
    detail: str

    def render(self) -> str:
        return f"{self.id}: {self.detail}"


@dataclass(frozen=True)
class Upgrade:
    package: NormalizedName
    file: str
    line: int
    current: str
    target: str
    reasons: tuple[Reason, ...]
    crosses_major: bool = False


@dataclass(frozen=True)
class Blocked:
    package: NormalizedName
    current: str | None
    reasons: tuple[Reason, ...]
    why: str


Decision = Upgrade | Blocked | None  # None: nothing to do for this pin


def decide_pin(
    health: PinHealth,
    facts: Facts | None,
    policy: UpgradePolicy,
    python_version: str,
    today: dt.date,
) -> Decision:
    """The target version for one pin, or why there is none, or None when it is fine (pure)."""
    pin = health.pin
    reasons, wants_latest, floors = _needs(health, policy)
    if not reasons:
        return None
    may_cross_major = (
        policy.allow_major
        or (bool(health.advisories) and policy.allow_major_for_security)
        or any(
            minimum.allow_major
            for minimum in policy.minimums
            if any(reason.id == minimum.rule_id for reason in reasons)
        )
    )
    current = health.current
    if current is None:
        return Blocked(pin.name, None, reasons, "not an exact pin; specfleet only moves exact pins")
    if not isinstance(facts, ReleaseFacts):
        why = facts.reason if facts is not None else "no index facts"
        return Blocked(pin.name, current, reasons, f"release facts unknown: {why}")
    try:
        current_version = Version(current)
    except InvalidVersion:
        return Blocked(pin.name, current, reasons, f"{current!r} is not a PEP 440 version")

    rejected: dict[str, str] = {}
    eligible = []
    for release in facts.releases:
        why_not = _ineligible(
            release, current_version, policy, may_cross_major, python_version, today
        )
        if why_not is None:
            eligible.append(release)
        elif release.parsed is not None and release.parsed > current_version:
            rejected[release.version] = why_not
    acceptable = [
        release
        for release in eligible
        if all(_fixes(advisory, release, current_version) for advisory in health.advisories)
        and all(release.version in floor for floor in floors)
    ]
    if not acceptable:
        return Blocked(pin.name, current, reasons, _blocked_explanation(health, rejected, floors))
    chosen = acceptable[-1] if wants_latest else acceptable[0]
    if chosen.version == current:
        return None
    target = chosen.parsed or current_version
    return Upgrade(
        pin.name,
        pin.file,
        pin.line,
        current,
        chosen.version,
        reasons,
        crosses_major=_major(target) != _major(current_version),
    )


def decide_all(
    report: HealthReport,
    facts: Mapping[NormalizedName, Facts],
    policy: UpgradePolicy,
    today: dt.date,
) -> list[Upgrade | Blocked]:
    python_version = report.runtime.runtime.removeprefix("python")
    decisions = []
    for health in report.pins:
        decision = decide_pin(health, facts.get(health.pin.name), policy, python_version, today)
        if decision is not None:
            decisions.append(decision)
    return decisions


def _needs(
    health: PinHealth, policy: UpgradePolicy
) -> tuple[tuple[Reason, ...], bool, list[SpecifierSet]]:
    reasons = [
        Reason("advisory", advisory.id, _advisory_detail(advisory, health))
        for advisory in health.advisories
    ]
    floors = []
    current = health.current
    for minimum in policy.minimums:
        if minimum.package != health.pin.name:
            continue
        floors.append(minimum.specifier)
        if current is None or current not in minimum.specifier:
            reasons.append(
                Reason("policy", minimum.rule_id, f"requires {minimum.package}{minimum.specifier}")
            )
    currency_rule = policy.currency.get(health.pin.name) or policy.currency.get("*")
    wants_latest = currency_rule is not None and health.outdated
    if wants_latest and currency_rule is not None:
        reasons.append(Reason("policy", currency_rule, f"keep current (latest is {health.latest})"))
    return tuple(reasons), wants_latest, floors


def _advisory_detail(advisory: Advisory, health: PinHealth) -> str:
    aliases = ", ".join(advisory.aliases[:2])
    severity = f"{advisory.severity} severity" if advisory.severity else "severity not stated"
    fixed = ", ".join(advisory.fixed_versions) or "no fix published"
    return (
        f"{health.pin.name} {health.current} is affected ({aliases}; {severity}; fixed in {fixed})"
    )


def _ineligible(
    release: Release,
    current: Version,
    policy: UpgradePolicy,
    may_cross_major: bool,
    python_version: str,
    today: dt.date,
) -> str | None:
    version = release.parsed
    if version is None:
        return "not a PEP 440 version"
    if version < current:
        return "older than the current pin"
    if version == current:
        return None  # the current release is always a candidate (it may already comply)
    if version.is_prerelease and not current.is_prerelease:
        return "a pre-release"
    if release.yanked:
        return f"yanked ({release.yanked_reason or 'no reason given'})"
    if release.requires_python:
        try:
            if python_version not in SpecifierSet(release.requires_python):
                return f"requires Python {release.requires_python}"
        except InvalidSpecifier:
            return f"unreadable requires_python {release.requires_python!r}"
    if release.uploaded_at is not None and policy.min_release_age_days:
        age = (today - release.uploaded_at.date()).days
        if age < policy.min_release_age_days:
            return f"released {age} days ago (minimum age {policy.min_release_age_days} days)"
    if not may_cross_major and _major(version) != _major(current):
        return f"a new major version ({_major_text(current)} → {_major_text(version)})"
    return None


def _fixes(advisory: Advisory, release: Release, current: Version) -> bool:
    verdict = advisory.affects(release.version)
    if verdict is not None:
        return not verdict
    # the source only names fixed versions: trust the lowest fix above the current pin
    fixes = []
    for fixed in advisory.fixed_versions:
        try:
            parsed = Version(fixed)
        except InvalidVersion:
            continue
        if parsed > current:
            fixes.append(parsed)
    return bool(fixes) and release.parsed is not None and release.parsed >= min(fixes)


def _major(version: Version) -> tuple[int, ...]:
    # semver: below 1.0 every minor release may break, so 0.9 -> 0.10 crosses a "major"
    return (0, version.minor) if version.major == 0 else (version.major,)


def _blocked_explanation(
    health: PinHealth, rejected: Mapping[str, str], floors: Sequence[SpecifierSet]
) -> str:
    if health.advisories and not any(advisory.fixed_versions for advisory in health.advisories):
        return "no fixed release is published for the advisory"
    wanted = health.fixed_in
    for version, why in rejected.items():  # in version order: the nearest release first
        fixes = wanted is None or Version(version) >= Version(wanted)
        if fixes and all(version in floor for floor in floors):
            return f"{version} would do, but it is {why}"
    floor_text = f" satisfying {', '.join(str(floor) for floor in floors)}" if floors else ""
    return f"no release{floor_text} fixes it"


@dataclass(frozen=True)
class DependencyProposal:
    """The deterministic dependency change for one product: what moves, why, and the edits."""

    upgrades: tuple[Upgrade, ...]
    blocked: tuple[Blocked, ...]
    plan: RewritePlan

    @property
    def targets(self) -> dict[NormalizedName, str]:
        chosen: dict[NormalizedName, str] = {}
        for upgrade in self.upgrades:
            known = chosen.get(upgrade.package)
            # one package declared twice (e.g. split by markers) moves to the higher target
            if known is None or Version(upgrade.target) > Version(known):
                chosen[upgrade.package] = upgrade.target
        return chosen

    @property
    def empty(self) -> bool:
        return not self.upgrades

    def diff(self) -> str:
        """Unified diff of the declared files (a regenerated lock is named, not shown)."""
        parts: list[str] = []
        for edit in self.plan.edits:
            parts.extend(
                difflib.unified_diff(
                    edit.original.splitlines(keepends=True),
                    edit.rewrite.text.splitlines(keepends=True),
                    fromfile=f"a/{edit.file}",
                    tofile=f"b/{edit.file}",
                )
            )
        if self.plan.lock and self.plan.lock_changes:
            changes = ", ".join(f"{name}=={version}" for name, version in self.plan.lock_changes)
            parts.append(f"# {self.plan.lock} is {self.plan.lock_action} ({changes})\n")
        for note in self.plan.notes:
            if note.kind in ("lock-edited", "unreadable", "hashes-dropped"):
                parts.append(f"# note: {note.message}\n")
        return "".join(parts)


def propose(
    repo: Path,
    pinset: PinSet,
    report: HealthReport,
    facts: Mapping[NormalizedName, Facts],
    policy: UpgradePolicy,
    today: dt.date,
) -> DependencyProposal:
    """Decide every pin and plan the file edits; reads the repository, writes nothing."""
    decisions = decide_all(report, facts, policy, today)
    upgrades = tuple(item for item in decisions if isinstance(item, Upgrade))
    blocked = tuple(item for item in decisions if isinstance(item, Blocked))
    proposal = DependencyProposal(upgrades, blocked, RewritePlan((), None, ()))
    plan = plan_rewrites(repo, pinset, proposal.targets) if upgrades else proposal.plan
    return DependencyProposal(upgrades, blocked, plan)


def apply_proposal(
    repo: Path,
    pinset: PinSet,
    proposal: DependencyProposal,
    python_version: str,
    *,
    use_tools: bool = True,
) -> list[Path]:
    """Write the proposal's edits (and move the lock); all files or none change.

    ``python_version`` is the product's own target (the spec's runtime, else what its files
    say), never the worker's; ``use_tools=False`` edits a uv.lock in place instead of
    running ``uv lock``.
    """
    if proposal.empty:
        return []
    return write_rewrites(
        repo, pinset, proposal.targets, python_version=python_version, use_tools=use_tools
    )


def _major_text(version: Version) -> str:
    return ".".join(str(part) for part in _major(version)) + ".x"
