"""Every pin that changed between two readings of a product's files, direct or transitive:
what a merge request lists so an owner sees lock-only moves too (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import NormalizedName

from specfleet.core.health.pins.model import PinSet


@dataclass(frozen=True)
class PinDifference:
    name: NormalizedName
    old: str  # the versions before, "" when the package is new
    new: str  # the versions after, "" when it is gone
    direct: bool  # the product asks for it itself (else a transitive, lock-only pin)
    file: str  # where the after (else before) pin is


def pin_differences(before: PinSet, after: PinSet) -> tuple[PinDifference, ...]:
    """Packages whose set of pinned versions differs, by name."""
    old, new = _versions(before), _versions(after)
    files = {pin.name: pin.file for pin in (*before.pins, *after.pins)}
    direct = before.direct | after.direct
    return tuple(
        PinDifference(name, old.get(name, ""), new.get(name, ""), name in direct, files[name])
        for name in sorted(set(old) | set(new))
        if old.get(name, "") != new.get(name, "")
    )


def _versions(pinset: PinSet) -> dict[NormalizedName, str]:
    found: dict[NormalizedName, set[str]] = {}
    for pin in pinset.pins:
        found.setdefault(pin.name, set()).add(pin.version or str(pin.specifier) or "*")
    return {name: ", ".join(sorted(values)) for name, values in found.items()}
