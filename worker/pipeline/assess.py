"""Stage 4, assess: the product's dependency health and its policy findings at one commit.

Used twice per evaluation: on the baseline (what the plan starts from) and on the candidate
(the re-scan the verification compares against). Policy sets are immutable, so each version
is loaded once per worker process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from sqlalchemy import func
from sqlmodel import Session, select

from specfleet.core.db import PolicySetRecord
from specfleet.core.health.pins import PinSet, read_pins
from specfleet.core.health.releases import Facts
from specfleet.core.health.report import HealthReport, assess
from specfleet.core.spec import Spec
from specfleet.policies.check import ProductCheck, applicable, check_product, run_semgrep_rules
from specfleet.policies.findings import Finding
from specfleet.policies.model import Rule
from specfleet.policies.store import PolicySet, load_policy_set
from specfleet.worker.pipeline.deps import PipelineDeps


@dataclass(frozen=True)
class Assessment:
    """One side's health and findings."""

    pinset: PinSet
    facts: Mapping[NormalizedName, Facts]
    health: HealthReport
    check: ProductCheck | None  # None: no policy set is published

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.check.findings if self.check is not None else ()

    @property
    def pins(self) -> list[tuple[str, str | None]]:
        return [(str(pin.name), pin.version) for pin in self.pinset.pins]


def latest_policy_version(session: Session) -> int | None:
    return session.exec(select(func.max(PolicySetRecord.version))).first()


def policy_set(deps: PipelineDeps, version: int | None) -> PolicySet | None:
    """The published policy set ``version`` (cached: published sets never change)."""
    if version is None:
        return None
    cached = deps.policy_cache.get(version)
    if cached is None:
        cached = load_policy_set(deps.engine, version)
        deps.policy_cache[version] = cached
    return cached


def rules_for(
    policies: PolicySet | None,
    product_id: str,
    tags: Sequence[str],
    runtime: str | None,
    today: dt.date,
) -> list[Rule]:
    """The rules of ``policies`` that apply to the product today."""
    if policies is None:
        return []
    return [
        rule
        for rule in policies.rules
        if rule.scope.covers(product_id, list(tags), runtime) and rule.effective <= today
    ]


def assess_checkout(
    checkout: Path,
    spec: Spec,
    spec_path: str,
    deps: PipelineDeps,
    policies: PolicySet | None,
    now: dt.datetime,
) -> Assessment:
    """Read the pins, ask the index and the advisory source, and check the policies."""
    pinset = read_pins(checkout, spec.implementation.dependencies)
    facts = deps.index.facts(pin.name for pin in pinset.pins)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    found = deps.advisories.advisories_for(exact) if exact else {}
    health = assess(
        spec.id,
        spec.implementation.runtime,
        pinset.pins,
        pinset.problems,
        facts,
        found,
        deps.advisories.name,
        now.date(),
        pinset.files,
    )
    check = None
    if policies is not None:
        applies, _ = applicable(policies.rules, spec, now.date())
        semgrep = run_semgrep_rules if any(rule.kind == "semgrep" for rule in applies) else None
        check = check_product(
            checkout,
            spec,
            spec_path,
            policies.rules,
            policies.semgrep_files,
            health,
            semgrep,
            policies.version,
            now,
        )
    return Assessment(pinset, facts, health, check)
