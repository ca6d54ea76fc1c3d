"""What changed between two policy sets, and which products a change newly affects (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from specfleet.policies.model import Rule


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. "dependency.minimum_versions.pandas"
    old: Any
    new: Any


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    old: Rule
    new: Rule
    fields: tuple[FieldChange, ...]

    @property
    def scope_changed(self) -> bool:
        return any(change.path.startswith("scope") for change in self.fields)


@dataclass(frozen=True)
class PolicyDiff:
    added: tuple[Rule, ...]
    removed: tuple[Rule, ...]
    changed: tuple[RuleChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True)
class ProductFacts:
    """What scoping needs to know of a registered product."""

    id: str
    tags: tuple[str, ...]
    runtime: str | None


def diff_rules(old: Iterable[Rule], new: Iterable[Rule]) -> PolicyDiff:
    before = {rule.id: rule for rule in old}
    after = {rule.id: rule for rule in new}
    changed = []
    for rule_id in sorted(before.keys() & after.keys()):
        fields = tuple(
            _field_changes(
                before[rule_id].model_dump(mode="json"), after[rule_id].model_dump(mode="json")
            )
        )
        if fields:
            changed.append(RuleChange(rule_id, before[rule_id], after[rule_id], fields))
    return PolicyDiff(
        added=tuple(after[rule_id] for rule_id in sorted(after.keys() - before.keys())),
        removed=tuple(before[rule_id] for rule_id in sorted(before.keys() - after.keys())),
        changed=tuple(changed),
    )


def _field_changes(old: Any, new: Any, path: str = "") -> Iterable[FieldChange]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            yield from _field_changes(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    elif old != new:
        yield FieldChange(path, old, new)


def covered(rule: Rule, product: ProductFacts) -> bool:
    return rule.scope.covers(product.id, list(product.tags), product.runtime)


def newly_affected(diff: PolicyDiff, products: Sequence[ProductFacts]) -> dict[str, list[str]]:
    """Rule id -> products that must be re-evaluated because of it.

    An added rule affects every product it covers; a changed rule affects the products it
    covers now (a rule whose scope widened counts as added for the newly covered ones, which
    are included); a removed rule affects nobody (no product must change for it).
    """
    affected: dict[str, list[str]] = {}
    for rule in diff.added:
        affected[rule.id] = [product.id for product in products if covered(rule, product)]
    for change in diff.changed:
        affected[change.rule_id] = [
            product.id for product in products if covered(change.new, product)
        ]
    return {rule_id: ids for rule_id, ids in affected.items() if ids}


def newly_covered(change: RuleChange, products: Sequence[ProductFacts]) -> list[str]:
    """Products the new scope covers and the old one did not."""
    return [
        product.id
        for product in products
        if covered(change.new, product) and not covered(change.old, product)
    ]
