"""What an organisation allows when moving a pin: the input of the dependency remediator.

Value types only; policies fill them from their rules (``policies.checks.dependency``) and the
remediator (``specfleet.agent.remediators.dependencies``) decides with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName


@dataclass(frozen=True)
class MinimumVersion:
    """A policy's floor for one package, e.g. pandas >= 2.2 (rule ORG-PY-004)."""

    package: NormalizedName
    specifier: SpecifierSet
    rule_id: str
    allow_major: bool = False  # reaching the floor may take a new major version


@dataclass(frozen=True)
class UpgradePolicy:
    """The organisation's rules for moving pins."""

    allow_major: bool = False  # any upgrade may cross a major version
    allow_major_for_security: bool = False  # a vulnerability fix may
    min_release_age_days: int = 0
    minimums: tuple[MinimumVersion, ...] = ()
    # packages a currency rule wants on their latest allowed release, with that rule's id;
    # the key "*" applies to every package
    currency: Mapping[str, str] = field(default_factory=dict)
