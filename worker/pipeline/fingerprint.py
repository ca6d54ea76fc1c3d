"""An evaluation's fingerprint and the no-op decision.

The fingerprint hashes everything that can change an evaluation's answer (DESIGN.md section
1): the branch tip, the product's registration (repository, branch, spec path), the policy
rules that apply to the product, the dependency-health facts of its pins (index facts and
advisories) and the planner's identity (model and prompt version). Each part is kept as its
own digest in the evaluation's summary, so a re-evaluation can say *which* input changed.

:func:`decide_noop` is pure. The digests are computed by the stages: the rules digest from the
cached policy set, the facts digest from the index cache and the advisory source for the
pins the previous evaluation read at the same commit (a changed commit is a change already,
so its pins are only read once the evaluation goes on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from packaging.utils import canonicalize_name

from specfleet.core.health.advisories import AdvisorySource
from specfleet.core.health.releases import IndexClient, ReleaseFacts
from specfleet.policies.model import Rule

FINGERPRINT_VERSION = "1"  # bump when what the fingerprint covers changes

Pins = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class FingerprintInputs:
    """The digests an evaluation's answer depends on."""

    commit: str
    registration: str
    rules: str
    facts: str
    planner: str

    def fingerprint(self) -> str:
        text = json.dumps({"v": FINGERPRINT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class PreviousEvaluation:
    """The product's last evaluation that answered (any outcome but ``failed``)."""

    id: int
    window: str
    fingerprint: str
    commit: str | None
    inputs: Mapping[str, str]  # FingerprintInputs.as_dict() of that evaluation
    pins: Pins  # (package, pinned version) read at ``commit``

    @classmethod
    def from_summary(
        cls, evaluation_id: int, window: str, fingerprint: str, commit: str | None, summary: Any
    ) -> PreviousEvaluation:
        summary = summary if isinstance(summary, dict) else {}
        raw_pins = summary.get("pins") or []
        pins = tuple(
            (str(item[0]), None if item[1] is None else str(item[1]))
            for item in raw_pins
            if isinstance(item, list | tuple) and len(item) == 2
        )
        inputs = summary.get("inputs") if isinstance(summary.get("inputs"), dict) else {}
        return cls(evaluation_id, window, fingerprint, commit, dict(inputs or {}), pins)


@dataclass(frozen=True)
class NoOpDecision:
    noop: bool
    reason: str
    same_as: int | None = None


INPUT_NAMES = {
    "commit": "the branch tip",
    "registration": "the product's registration",
    "rules": "the policy rules that apply",
    "facts": "the dependency-health facts",
    "planner": "the planner",
}


def decide_noop(previous: PreviousEvaluation | None, current: FingerprintInputs) -> NoOpDecision:
    """Equal fingerprints: nothing can have changed since ``previous``, so stop (pure)."""
    if previous is None:
        return NoOpDecision(False, "first evaluation of this product")
    if current.fingerprint() == previous.fingerprint:
        return NoOpDecision(
            True, f"inputs unchanged since evaluation {previous.id}", same_as=previous.id
        )
    now = current.as_dict()
    changed = [INPUT_NAMES[name] for name in INPUT_NAMES if previous.inputs.get(name) != now[name]]
    if not changed:
        changed = ["the fingerprint format"]
    return NoOpDecision(False, "changed: " + ", ".join(changed))


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def registration_digest(repo_url: str, branch: str, spec_path: str) -> str:
    return digest([repo_url, branch, spec_path])


def rules_digest(rules: Iterable[Rule]) -> str:
    """The applicable rules' content: a new policy version that adds nothing for this product
    leaves its fingerprint alone."""
    return digest(sorted((rule.id, rule.model_dump_json()) for rule in rules))


def facts_digest(
    pins: Sequence[tuple[str, str | None]], index: IndexClient, advisories: AdvisorySource
) -> str:
    """Digest of :func:`health_facts` for ``pins`` (from caches on the no-op path)."""
    view = health_facts(pins, index, advisories)
    return digest({"pins": sorted((name, version or "") for name, version in pins), **view})


def health_facts(
    pins: Sequence[tuple[str, str | None]], index: IndexClient, advisories: AdvisorySource
) -> dict[str, Any]:
    """What the index and the advisory source say about ``pins`` that a decision can use:
    each package's latest release and release count, and the advisories against each pin."""
    names = sorted({name for name, _ in pins})
    facts = index.facts(names) if names else {}
    releases: dict[str, Any] = {}
    for name, found in facts.items():
        if isinstance(found, ReleaseFacts):
            releases[str(name)] = [found.latest, len(found.releases)]
        else:
            releases[str(name)] = "unknown"
    exact = [(canonicalize_name(name), version) for name, version in pins if version]
    against = advisories.advisories_for(exact) if exact else {}
    found_ids = {
        f"{name}=={version}": sorted(advisory.id for advisory in items)
        for (name, version), items in against.items()
    }
    return {"releases": releases, "advisories": found_ids}
