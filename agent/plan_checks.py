"""Checks on a plan as a whole, after every edit: the resulting files, and what the plan claims.

Edits are judged one by one in :mod:`agent.guards`, but some problems only exist in the result:
two edits that each write half a token into one file, a bidi control assembled from two
replacements. So the *resulting* content of every file a plan changes is scanned again, and
only what the original file did not already carry counts against the plan.

And a plan's words are claims to check, not evidence: a plan without edits is either
``no_change`` with a reason or nothing at all, and every policy rule a rationale cites must be
a finding of the code as it is (requirement and amendment ids of the spec are fine too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from specfleet.agent.plan import Plan
from specfleet.agent.sanitise import BIDI_CONTROLS
from specfleet.core.secrets import contains_known_secret, find_secret_shapes

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SPEC_IDS = re.compile(r"^[RA]\d+$")


@dataclass(frozen=True)
class FileProblem:
    path: str
    reason: str


def result_problem(
    path: str, original: str | None, result: str, known_secrets: Iterable[str] = ()
) -> str | None:
    """What the resulting file carries that the original did not (None: nothing new)."""
    before = original or ""
    if ("\x00" in result or CONTROL.search(result)) and not CONTROL.search(before):
        return "the resulting file contains binary or control characters"
    if BIDI_CONTROLS.search(result) and not BIDI_CONTROLS.search(before):
        return "the resulting file contains bidirectional control characters"
    secrets = tuple(known_secrets)
    if contains_known_secret(result, secrets) and not contains_known_secret(before, secrets):
        return "the resulting file contains a configured secret (assembled across edits)"
    new_shapes = sorted(set(find_secret_shapes(result)) - set(find_secret_shapes(before)))
    if new_shapes:
        return (
            f"the resulting file looks like it carries a secret ({', '.join(new_shapes)}), "
            "assembled across edits"
        )
    return None


def whole_file_problems(
    staged: dict[str, str | None],
    originals: dict[str, str | None],
    known_secrets: Iterable[str] = (),
) -> list[FileProblem]:
    """Every staged file whose final content carries something new and forbidden."""
    secrets = tuple(known_secrets)
    problems = []
    for path, result in sorted(staged.items()):
        if result is None:
            continue
        reason = result_problem(path, originals.get(path), result, secrets)
        if reason is not None:
            problems.append(FileProblem(path, reason))
    return problems


def claims_problem(
    plan: Plan, spec_ids: frozenset[str], baseline_rules: frozenset[str] | None
) -> str | None:
    """Why the plan's claims do not hold (None: they do).

    ``baseline_rules`` are the rule ids the baseline's policy scan found (None: not known, as
    when a plan is audited by hand without a scan; then rule citations are not checked).
    """
    changes = bool(plan.edits) or plan.amendment is not None
    if plan.no_change and changes:
        return "a no_change plan may not carry edits or an amendment"
    if plan.no_change and not (plan.no_change_reason or "").strip():
        return "a no_change plan must give its reason (no_change_reason)"
    if not changes and not plan.no_change:
        return "a plan with no edits can only be no_change with a reason"
    if baseline_rules is None:
        return None
    cited = sorted(
        {
            cite.strip()
            for item in plan.rationale
            for cite in item.cites
            if cite.strip() and cite.strip() not in spec_ids and not SPEC_IDS.match(cite.strip())
        }
    )
    unknown = [cite for cite in cited if cite not in baseline_rules]
    if unknown:
        shown = ", ".join(unknown[:5])
        return (
            f"the plan cites {shown}, which the policy scan of the current code did not report; "
            "cite only findings the plan resolves, or requirement ids"
        )
    return None
