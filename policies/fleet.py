"""A policy pack's fleet-wide section, ``fleet.yaml`` at the pack's root (optional).

It bounds what no single rule can: how many merge requests specfleet may open (Renovate's
``prHourlyLimit`` and ``prConcurrentLimit``), the most automerge an owner may opt into, and
whether owners merge their own products' merge requests. Settings give the same limits; the
stricter of the two applies. Example::

    merge_requests:
      hourly_limit: 20          # new merge requests per hour, fleet-wide
      open_per_owner: 5         # open at the same time per owner e-mail
      owners_merge: false       # owners approve; ...
      merged_by: the platform team (platform@example.com)   # ... who merges, as said to them
    automerge:
      max_level: security-patch # never | security-patch | deterministic
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from specfleet.core.spec.problems import Problem
from specfleet.core.yamldoc import check_yaml
from specfleet.policies.model import PolicyModel

FLEET_FILE = "fleet.yaml"
MAX_FLEET_FILE_BYTES = 64 * 1024


class MergeRequestRules(PolicyModel):
    hourly_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    open_per_owner: int | None = Field(default=None, ge=0, le=1_000_000)
    owners_merge: bool = Field(
        default=True, description="Whether an owner may merge their own product's merge request."
    )
    merged_by: str | None = Field(default=None, max_length=200)


class AutomergeRules(PolicyModel):
    max_level: Literal["never", "security-patch", "deterministic"] = "security-patch"


class FleetRules(PolicyModel):
    merge_requests: MergeRequestRules | None = None
    automerge: AutomergeRules | None = None


def load_fleet_rules(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The pack's ``fleet.yaml`` as plain data (None when absent), or its problems."""
    path = root / FLEET_FILE
    if not path.is_file():
        return None, []
    checked = check_yaml(
        path.read_bytes(),
        str(path),
        FleetRules,
        max_bytes=MAX_FLEET_FILE_BYTES,
        what="a mapping of fleet sections",
    )
    if checked.value is None:
        return None, list(checked.problems)
    return checked.value.model_dump(mode="json", exclude_none=True), []
