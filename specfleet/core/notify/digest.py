"""What goes in an owner's weekly digest: pure decisions over facts read from the registry.

The seed's story is "on Monday each owner finds merge requests showing the new rule, the
change and the test results". The digest tells them: their products, each open merge
request with its verdict and the new policy rules it answers, every product whose latest
evaluation needs a person, with the reason and what to do, and every merge specfleet made on
their opt-in (automerge) since their last digest, with how to revert it. An owner with nothing
waiting and nothing automerged gets nothing, and an owner who opted out gets nothing either.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["verified", "draft", "not verified"]
MAX_RULES = 20  # per merge request: a digest is read on a phone
MAX_TEXT = 300
MAX_AUTOMERGED = 50  # per digest; the rest stays unannounced for the next one

_RULES_HEADING = "## Policy rules new since the last merged proposal"
_TABLE_ROW = re.compile(r"^\|\s*([A-Za-z0-9_.:\-]{1,64})\s*\|\s*([a-z]{1,16})\s*\|[^|]*\|(.*?)\|")


@dataclass(frozen=True)
class RuleLine:
    """A policy rule a merge request answers."""

    id: str
    severity: str
    title: str


@dataclass(frozen=True)
class ProductFacts:
    """A registered product as far as the digest needs it."""

    id: str
    name: str
    owners: tuple[str, ...]


@dataclass(frozen=True)
class WaitingMergeRequest:
    """An open merge request waiting for an owner's review."""

    product_id: str
    title: str
    url: str
    verdict: Verdict
    rules: tuple[RuleLine, ...] = ()


@dataclass(frozen=True)
class NeedsHuman:
    """A product whose latest evaluation could not produce a verified change."""

    product_id: str
    evaluation_id: int
    reason: str
    what_to_do: str


@dataclass(frozen=True)
class Automerged:
    """A merge request specfleet merged on the owner's opt-in, not yet announced to everyone.

    ``announced_to`` holds the (casefolded) owners whose digest already told them.
    """

    record_id: int
    product_id: str
    merge_request_id: int
    title: str
    level: str
    merged_at: dt.datetime
    merged_commit: str | None = None
    revert_merge_request_id: int | None = None
    announced_to: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OwnerDigest:
    """One owner's message for one week."""

    owner: str
    week: str  # ISO week, e.g. 2026-W49
    products: tuple[ProductFacts, ...]
    merge_requests: tuple[WaitingMergeRequest, ...] = ()
    needs_human: tuple[NeedsHuman, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict, compare=False)
    automerged: tuple[Automerged, ...] = ()

    @property
    def waiting(self) -> int:
        return len(self.merge_requests) + len(self.needs_human)

    @property
    def news(self) -> int:
        """Everything the digest tells: what waits and what was merged without a click."""
        return self.waiting + len(self.automerged)

    def product_name(self, product_id: str) -> str:
        return self.names.get(product_id, product_id)


def iso_week(moment: dt.datetime | dt.date) -> str:
    """The ISO week a moment falls in, e.g. 2026-W49 (the digest's de-duplication key)."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def owner_digests(
    products: Iterable[ProductFacts],
    merge_requests: Iterable[WaitingMergeRequest],
    needs_human: Iterable[NeedsHuman],
    week: str,
    opted_out: Iterable[str] = (),
    only_owner: str | None = None,
    automerged: Iterable[Automerged] = (),
) -> list[OwnerDigest]:
    """One digest per owner with news, sorted by owner; opted-out owners omitted."""
    catalogue = list(products)
    names = {product.id: product.name for product in catalogue}
    silent = {owner.casefold() for owner in opted_out}
    requests = list(merge_requests)
    stuck = list(needs_human)
    merged = list(automerged)
    owners = sorted({owner for product in catalogue for owner in product.owners}, key=str.casefold)
    digests = []
    for owner in owners:
        if owner.casefold() in silent:
            continue
        if only_owner is not None and owner.casefold() != only_owner.casefold():
            continue
        theirs = tuple(p for p in catalogue if owner in p.owners)
        ids = {product.id for product in theirs}
        digest = OwnerDigest(
            owner=owner,
            week=week,
            products=theirs,
            merge_requests=tuple(
                sorted(
                    (r for r in requests if r.product_id in ids),
                    key=lambda r: (r.verdict != "verified", r.product_id),
                )
            ),
            needs_human=tuple(sorted((n for n in stuck if n.product_id in ids), key=_by_product)),
            names=names,
            automerged=automerged_for(owner, ids, merged),
        )
        if digest.news:
            digests.append(digest)
    return digests


def automerged_for(
    owner: str, product_ids: set[str], merged: Iterable[Automerged]
) -> tuple[Automerged, ...]:
    """The automerges of the owner's products their digest has not told them about, oldest
    first and at most :data:`MAX_AUTOMERGED` (the rest waits for the next digest)."""
    told = owner.casefold()
    theirs = [
        item for item in merged if item.product_id in product_ids and told not in item.announced_to
    ]
    theirs.sort(key=lambda item: (item.merged_at, item.record_id))
    return tuple(theirs[:MAX_AUTOMERGED])


def _by_product(item: NeedsHuman) -> str:
    return item.product_id


def verdict_of(draft: bool, verification: str | None) -> Verdict:
    """A draft is not ready; otherwise the recorded verification says whether it passed.

    Only verified candidates are published ready (DESIGN.md section 7), so a ready merge
    request without a recorded verification is taken as verified.
    """
    if draft:
        return "draft"
    if verification and "verification: failed" in verification.casefold():
        return "not verified"
    return "verified"


def rules_from_summary(summary: Mapping[str, object] | None) -> tuple[RuleLine, ...] | None:
    """The new rules an evaluation recorded (``summary["new_rules"]``), if it recorded them."""
    raw = (summary or {}).get("new_rules")
    if not isinstance(raw, list):
        return None
    lines = []
    for item in raw[:MAX_RULES]:
        if isinstance(item, dict) and item.get("id"):
            lines.append(
                RuleLine(
                    _short(str(item["id"]), 64),
                    _short(str(item.get("severity", "")), 16),
                    _short(str(item.get("title", ""))),
                )
            )
    return tuple(lines)


def rules_from_description(description: str) -> tuple[RuleLine, ...]:
    """The rows of the merge request's "Policy rules new since..." table (specfleet writes it).

    The description is specfleet's own text; it is still read with bounded patterns and a
    bounded count, since the rest of it quotes the planner.
    """
    start = description.find(_RULES_HEADING)
    if start < 0:
        return ()
    section = description[start + len(_RULES_HEADING) :].split("\n## ", 1)[0]
    lines = []
    for row in section.splitlines()[: MAX_RULES + 8]:
        found = _TABLE_ROW.match(row.strip())
        if found and found.group(1) not in ("rule", "---"):
            lines.append(RuleLine(found.group(1), found.group(2), _short(found.group(3))))
    return tuple(lines[:MAX_RULES])


def what_to_do(reason: str) -> str:
    """Advice for an owner whose product needs a person, from the evaluation's reason."""
    text = reason.casefold()
    if "budget" in text:
        return (
            "The LLM budget of this product ran out this week: raise budget_calls/budget_tokens "
            "for it, or make the change by hand."
        )
    if "llm endpoint" in text or "no llm" in text:
        return (
            "No LLM is configured for specfleet: make the change by hand, or ask the platform team."
        )
    if "conflict" in text:
        return (
            "The requested amendment conflicts with the spec: revise the request on the product "
            "page."
        )
    if "refused" in text or "guard" in text:
        return (
            "Every candidate touched something specfleet may not change: read the attempts on "
            "the evaluation page and make the change by hand."
        )
    return (
        "No candidate passed verification: read the attempts and the verification on the "
        "evaluation page, then fix by hand or amend the spec."
    )


def _short(text: str, limit: int = MAX_TEXT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = [
    "Automerged",
    "NeedsHuman",
    "OwnerDigest",
    "ProductFacts",
    "RuleLine",
    "WaitingMergeRequest",
    "automerged_for",
    "iso_week",
    "owner_digests",
    "rules_from_description",
    "rules_from_summary",
    "verdict_of",
    "what_to_do",
]
