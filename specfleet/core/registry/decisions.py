"""What a registration is and what registering it does: pure values and decisions."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from specfleet.core.db import Product
from specfleet.core.errors import ProductConflict
from specfleet.core.spec.model import EMAIL_PATTERN, Spec

Forge = Literal["local", "gitlab", "github"]
RegistrationStatus = Literal["added", "updated", "unchanged", "reactivated"]

# fields compared to decide whether a re-registration changes anything
TRACKED_FIELDS = (
    "name",
    "repo_url",
    "branch",
    "spec_path",
    "forge",
    "forge_project",
    "owners",
    "tags",
    "runtime",
    "spec_hash",
    "registration_hash",
)


class Registration(BaseModel):
    """What a platform team asks to register: where a product lives and who owns it."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    repo: str = Field(min_length=1, description="Repository URL or local path.")
    branch: str = Field(default="main", min_length=1, pattern=r"^[^\s~^:?*\[\\]+$")
    spec: str = Field(default="dataproduct.yaml", min_length=1)
    forge: Forge = "local"
    project: str | None = Field(default=None, description="Forge project id or path.")
    owners: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @field_validator("owners")
    @classmethod
    def _emails(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        for owner in owners:
            if not re.match(EMAIL_PATTERN, owner):
                raise ValueError(f"owner {owner!r} is not an e-mail address")
        return owners

    @field_validator("spec")
    @classmethod
    def _relative_spec(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"spec path must be relative to the repository: {value!r}")
        return value

    def fingerprint(self, repo_url: str) -> str:
        """Hash of everything the registration itself (not the spec) contributes to a row."""
        fields = {**self.model_dump(mode="json"), "repo": repo_url}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RegistrationResult:
    """What registering one product did."""

    product_id: str
    status: RegistrationStatus
    changed_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpecFacts:
    """What the registry keeps of a valid spec (small, so thousands cross processes cheaply)."""

    id: str
    name: str
    owners: tuple[str, ...]
    tags: tuple[str, ...]
    runtime: str

    @classmethod
    def of(cls, spec: Spec) -> SpecFacts:
        return cls(
            spec.id,
            spec.name,
            tuple(spec.owners),
            tuple(spec.tags),
            spec.implementation.runtime,
        )


@dataclass(frozen=True)
class ResolvedProduct:
    """A registration whose spec was read and validated: the row it should become."""

    registration: Registration
    repo_url: str
    spec: SpecFacts
    spec_commit: str
    spec_hash: str  # git blob id of the spec: content-addressed, comparable without reading

    def desired_fields(self) -> dict[str, object]:
        return {
            "name": self.spec.name,
            "repo_url": self.repo_url,
            "branch": self.registration.branch,
            "spec_path": self.registration.spec,
            "forge": self.registration.forge,
            "forge_project": self.registration.project,
            "owners": merged(self.spec.owners, self.registration.owners),
            "tags": merged(self.spec.tags, self.registration.tags),
            "runtime": self.spec.runtime,
            "spec_hash": self.spec_hash,
            "registration_hash": self.registration.fingerprint(self.repo_url),
        }


def merged(first: Iterable[str], second: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def changed_fields(product: Product, desired: dict[str, object]) -> tuple[str, ...]:
    """The tracked fields whose stored value differs from ``desired``."""
    return tuple(name for name in TRACKED_FIELDS if getattr(product, name) != desired[name])


def is_unchanged(
    existing: Product | None, registration: Registration, repo_url: str, spec_blob: str
) -> bool:
    """True when neither the registration nor the spec's content changed since it was stored.

    Lets a re-import skip reading and validating specs: the spec's blob id and the
    registration's fingerprint together determine every stored field.
    """
    return (
        existing is not None
        and existing.active
        and existing.spec_hash == spec_blob
        and existing.registration_hash == registration.fingerprint(repo_url)
    )


def decide(existing: Product | None, resolved: ResolvedProduct) -> RegistrationResult:
    """Whether registering ``resolved`` adds, updates, reactivates or changes nothing.

    Raises :class:`ProductConflict` when the id is actively registered from elsewhere: two
    repositories claiming one id would make every later evaluation ambiguous.
    """
    product_id = resolved.spec.id
    if existing is None:
        return RegistrationResult(product_id, "added")
    if existing.active and (
        existing.repo_url != resolved.repo_url or existing.spec_path != resolved.registration.spec
    ):
        raise ProductConflict(
            f"product id {product_id!r} is already registered from "
            f"{existing.repo_url} ({existing.spec_path}); remove it first to move it"
        )
    changes = changed_fields(existing, resolved.desired_fields())
    if not existing.active:
        return RegistrationResult(product_id, "reactivated", changes)
    return RegistrationResult(product_id, "updated" if changes else "unchanged", changes)
