"""The deterministic remediators' change as the planning loop takes it: a summary, its diff,
and how to write it into a directory; :func:`deterministic_from_dependencies` builds one from
the dependency remediator's proposal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from specfleet.agent.plan import AmendmentDraft, Rationale
from specfleet.agent.remediators.dependencies import DependencyProposal, apply_proposal
from specfleet.core.health.pins import PinSet


@dataclass(frozen=True)
class DeterministicChange:
    """The remediators' proposal: a summary, its diff, and how to write it into a directory."""

    summary: str
    diff: str
    apply: Callable[[Path], Sequence[object]]
    rationale: tuple[Rationale, ...] = ()
    amendment: AmendmentDraft | None = None
    # False when the change alone cannot be the answer (an amended spec still needs code):
    # it is then the model's starting point only, never proposed by itself
    fallback: bool = True

    @property
    def empty(self) -> bool:
        return not self.diff.strip()


def deterministic_from_dependencies(
    proposal: DependencyProposal, pinset: PinSet, python_version: str
) -> DeterministicChange:
    """The dependency remediator's proposal as the loop's deterministic change."""
    moves = [f"{u.package} {u.current} → {u.target}" for u in proposal.upgrades]
    cited = sorted({reason.id for u in proposal.upgrades for reason in u.reasons})
    summary = "; ".join(moves) or "no dependency needs a change"
    why = "; ".join(
        dict.fromkeys(reason.render() for u in proposal.upgrades for reason in u.reasons)
    )
    files = sorted({u.file for u in proposal.upgrades})
    return DeterministicChange(
        summary=summary,
        diff=proposal.diff(),
        apply=lambda directory: apply_proposal(directory, pinset, proposal, python_version),
        rationale=tuple(
            Rationale(path=file, why=f"dependency upgrades: {summary}", cites=cited)
            for file in files
        ),
        amendment=AmendmentDraft(
            requirement="Keep the product's dependencies within the organisation's policies "
            "and free of known vulnerabilities.",
            change=f"Upgraded {summary}.",
            why=why or summary,
        )
        if proposal.upgrades
        else None,
    )
