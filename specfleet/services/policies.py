"""Publish a policy pack and queue the products its changed rules affect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

import specfleet.policies as policies_package
from specfleet.core.errors import InputError
from specfleet.policies.store import PublishOutcome

# the packs ship inside the specfleet.policies package (pack/<name>), editable or wheel alike
PACKS_DIR = Path(policies_package.__file__).resolve().parent / "pack"

Dispatch = Callable[[Sequence[int]], None]


@dataclass(frozen=True)
class PublishResult:
    """What a publication did: the outcome, how many evaluations were queued and whether the
    fleet was paused (then they wait in the queue until the pause is lifted)."""

    outcome: PublishOutcome
    affected: tuple[str, ...]
    queued: int
    paused: bool

    @property
    def already_queued(self) -> int:
        """Affected products whose policy evaluation of this week was already waiting."""
        return len(self.affected) - self.queued


def bundled_packs() -> list[str]:
    """The policy packs shipped with specfleet (policies/pack/<name>)."""
    if not PACKS_DIR.is_dir():
        return []
    return sorted(path.name for path in PACKS_DIR.iterdir() if (path / "rules").is_dir())


def pack_folder(pack: str) -> Path:
    """A bundled pack by name, or an absolute path to a pack folder (the server's files)."""
    if pack in bundled_packs():
        return PACKS_DIR / pack
    folder = Path(pack)
    if not folder.is_absolute() or not (folder / "rules").is_dir():
        raise InputError(
            f"{pack!r} is neither a bundled pack ({', '.join(bundled_packs())}) nor an "
            "absolute path to a pack folder with a rules/ directory"
        )
    return folder


def affected_products(outcome: PublishOutcome) -> tuple[str, ...]:
    """Every product some added or changed rule applies to, once, sorted."""
    return tuple(sorted({pid for ids in outcome.affected.values() for pid in ids}))


def publish_policy_pack(
    engine: Engine,
    folder: Path,
    message: str,
    actor: str,
    dispatch: Dispatch | None = None,
) -> PublishResult:
    """Publish the pack at ``folder`` as the next policy set (identical content: a no-op) and
    queue a ``policy`` evaluation of each affected product.

    ``dispatch`` sends the queued evaluations to the workers (None: they wait in the table for
    ``run-window``); while the fleet is paused nothing is sent, the sweep sends them after resume.
    """
    from specfleet.policies.checks.semgrep import validate_semgrep_rules
    from specfleet.policies.packs import load_pack
    from specfleet.policies.store import publish
    from specfleet.scheduler.fanout import queue_policy_evaluations
    from specfleet.scheduler.pause import fleet_paused

    if not message.strip():
        raise InputError("say why this version is published (the message)")
    loaded = load_pack(folder, validate_semgrep=validate_semgrep_rules)
    outcome = publish(engine, loaded, message.strip(), actor)
    affected = affected_products(outcome) if outcome.created else ()
    if not affected:
        return PublishResult(outcome, affected, 0, fleet_paused(engine) is not None)
    queued = queue_policy_evaluations(
        engine,
        affected,
        outcome.policy_set.version,
        dispatch=dispatch,
        pause_check=lambda: fleet_paused(engine) is not None,
    )
    return PublishResult(outcome, affected, queued, fleet_paused(engine) is not None)
