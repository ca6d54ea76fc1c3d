"""Organisation policy rules: what a rule says, to whom it applies, and why.

A pack is a folder of YAML rule files (one rule per file, or a ``rules:`` list) plus the
Semgrep rule files they reference. Unknown keys are errors, so a typo cannot silently turn a
rule off; every rule needs a ``why``, because a merge request citing a rule must be able to
tell a product owner the reason behind it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from specfleet.policies.findings import RuleKind, RuleSeverity

RULE_ID_PATTERN = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$"
VulnerabilityThreshold = Literal["any", "low", "medium", "high", "critical"]
SpecCheckName = Literal["column_description", "column_why", "requirement_tests", "pii_classified"]


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(PolicyModel):
    """Which products a rule applies to; an empty list means "no restriction"."""

    tags: list[str] = Field(default_factory=list, description="Products with any of these tags.")
    runtimes: list[str] = Field(default_factory=list, description="e.g. python3.11")
    products: list[str] = Field(default_factory=list, description="Product ids.")

    def covers(self, product_id: str, tags: list[str], runtime: str | None) -> bool:
        if self.products and product_id not in self.products:
            return False
        if self.tags and not set(self.tags) & set(tags):
            return False
        return not (self.runtimes and runtime not in self.runtimes)


class DependencyRule(PolicyModel):
    """Constraints on a product's pinned dependencies."""

    minimum_versions: dict[str, str] = Field(
        default_factory=dict, description="Package -> specifier it must satisfy, e.g. '>=2.2'."
    )
    banned: list[str] = Field(
        default_factory=list,
        description="Requirements that must not be pinned: a name, or a name with a range.",
    )
    max_vulnerability_severity: VulnerabilityThreshold | None = Field(
        default=None,
        description="Fail on advisories at or above this severity ('any': every advisory, "
        "including those whose severity is unknown).",
    )
    max_pin_age_days: int | None = Field(default=None, gt=0)
    min_release_age_days: int | None = Field(
        default=None, gt=0, description="Never adopt a release younger than this."
    )
    allow_major: bool = Field(
        default=False, description="Remediation may cross a major version to comply."
    )


class SemgrepRef(PolicyModel):
    file: str = Field(description="Semgrep rule file in the pack, e.g. semgrep/select-star.yaml.")


class SpecRule(PolicyModel):
    checks: list[SpecCheckName] = Field(min_length=1)


class Rule(PolicyModel):
    """One organisation rule."""

    id: str = Field(pattern=RULE_ID_PATTERN, description="Stable id, e.g. ORG-PY-004.")
    title: str = Field(min_length=1)
    kind: RuleKind
    severity: RuleSeverity
    effective: dt.date = Field(description="From when products must comply.")
    why: str = Field(min_length=1, description="The reason, quoted in merge requests.")
    owner: str = Field(min_length=1, description="Who to ask about the rule.")
    scope: Scope = Field(default_factory=Scope)
    dependency: DependencyRule | None = None
    semgrep: SemgrepRef | None = None
    spec: SpecRule | None = None
    guideline: str | None = Field(default=None, description="Guidance for the LLM planner.")

    @model_validator(mode="after")
    def _section_matches_kind(self) -> Rule:
        sections = {
            "dependency": self.dependency,
            "semgrep": self.semgrep,
            "spec": self.spec,
            "guideline": self.guideline,
        }
        if sections[self.kind] is None:
            raise ValueError(f"a {self.kind} rule needs a '{self.kind}' section")
        extra = [
            name for name, value in sections.items() if value is not None and name != self.kind
        ]
        if extra:
            raise ValueError(f"a {self.kind} rule cannot have a {', '.join(extra)} section")
        return self


class RuleFile(PolicyModel):
    """A file holding several rules."""

    rules: list[Rule] = Field(min_length=1)
