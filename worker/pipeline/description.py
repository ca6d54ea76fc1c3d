"""The merge request's description: everything a product owner needs to approve it alone.

Pure: built from the evaluation's facts, bounded in size (each table is capped and the
verification report is cut with a note if it ever grows past its share), and free of
anything secret (it is made of rule ids, package versions and the verification tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.pipeline.apply import DependencyChange
from worker.pipeline.plan import LLMUsage

MAX_ROWS = 30
MAX_VERIFICATION_CHARS = 40_000
MAX_CELL = 300


@dataclass(frozen=True)
class NewRule:
    id: str
    title: str
    severity: str
    kind: str


@dataclass(frozen=True)
class DescriptionFacts:
    product_id: str
    product_name: str
    evaluation_id: int
    trigger: str
    window: str
    policy_version: int | None
    baseline_policy_version: int | None  # the policy set at the last merged proposal
    new_rules: tuple[NewRule, ...]
    resolved_rules: tuple[str, ...]  # rule ids with findings this change resolves
    changes: tuple[DependencyChange, ...]
    amendment_id: str
    amendment_text: str
    verification: str  # worker.report.render_verdict output
    llm: LLMUsage
    base_branch: str
    base_commit: str
    candidate_commit: str
    proposal_key: str
    # the planner's account of its change: (file, why, cited requirement and rule ids)
    rationale: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    plan_summary: str = ""


TRIGGERS = {
    "weekly": "the weekly re-evaluation",
    "policy": "a newly published policy set",
    "manual": "a manual evaluation",
    "amendment": "a spec amendment",
}


def render_description(facts: DescriptionFacts) -> str:
    parts = [
        _summary(facts),
        _trigger(facts),
        _rules(facts),
        _rationale(facts),
        _changes(facts.changes) if facts.changes else "",
        _amendment(facts),
        "## Verification\n\n" + _bounded(facts.verification, MAX_VERIFICATION_CHARS),
        _llm(facts.llm),
        _footer(facts),
    ]
    return "\n\n".join(part.strip() for part in parts if part) + "\n"


def _summary(facts: DescriptionFacts) -> str:
    if facts.plan_summary:
        return (
            f"specfleet proposes this change to **{_cell(facts.product_name)}** "
            f"(`{facts.product_id}`): {_cell(facts.plan_summary)} The spec is unchanged except "
            f"for amendment {facts.amendment_id}, appended to record what changed and why."
        )
    count = len(facts.changes)
    noun = "dependency" if count == 1 else "dependencies"
    return (
        f"specfleet proposes this change to **{_cell(facts.product_name)}** "
        f"(`{facts.product_id}`): {count} {noun} upgraded to what the organisation's policies "
        f"and today's advisories ask for. The spec is unchanged except for amendment "
        f"{facts.amendment_id}, appended to record what changed and why."
    )


def _trigger(facts: DescriptionFacts) -> str:
    policy = f"v{facts.policy_version}" if facts.policy_version else "none published"
    return "\n".join(
        [
            "## Why now",
            "",
            "| | |",
            "| --- | --- |",
            f"| trigger | {TRIGGERS.get(facts.trigger, _cell(facts.trigger))} |",
            f"| window | {facts.window} |",
            f"| policy set | {policy} |",
            f"| baseline | `{_cell(facts.base_branch)}` at `{facts.base_commit[:12]}` |",
        ]
    )


def _rules(facts: DescriptionFacts) -> str:
    head = "## Policy rules new since the last merged proposal"
    if facts.baseline_policy_version is None:
        since = "No proposal of this product was merged yet, so every rule that applies is new."
    else:
        since = (
            f"The last merged proposal was made under policy set v{facts.baseline_policy_version}."
        )
    if not facts.new_rules:
        return f"{head}\n\n{since} None since: every rule that applies was already in force."
    rows = [
        head,
        "",
        since,
        "",
        "| rule | severity | kind | title | this change |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in facts.new_rules[:MAX_ROWS]:
        resolves = "resolves its findings" if rule.id in facts.resolved_rules else ""
        rows.append(
            f"| {_cell(rule.id)} | {_cell(rule.severity)} | {_cell(rule.kind)} | "
            f"{_cell(rule.title)} | {resolves} |"
        )
    rows += _more(len(facts.new_rules))
    return "\n".join(rows)


def _rationale(facts: DescriptionFacts) -> str:
    if not facts.rationale:
        return ""
    rows = ["## What changed and why", "", "| file | why | cites |", "| --- | --- | --- |"]
    for path, why, cites in facts.rationale[:MAX_ROWS]:
        rows.append(f"| `{_cell(path)}` | {_cell(why)} | {_cell(', '.join(cites))} |")
    rows += _more(len(facts.rationale))
    return "\n".join(rows)


def _changes(changes: Sequence[DependencyChange]) -> str:
    rows = [
        "## Dependency changes",
        "",
        "| package | from | to | file | why |",
        "| --- | --- | --- | --- | --- |",
    ]
    for change in changes[:MAX_ROWS]:
        rows.append(
            f"| {_cell(change.package)} | {_cell(change.current)} | {_cell(change.target)} | "
            f"{_cell(change.file)} | {_cell(change.why)} |"
        )
    rows += _more(len(changes))
    return "\n".join(rows)


def _amendment(facts: DescriptionFacts) -> str:
    text = _bounded(facts.amendment_text, 4000).replace("```", "'''")
    return (
        f"## Spec amendment {facts.amendment_id}\n\n"
        "Appended to the spec's `amendments`; requirements, outputs and tests are untouched.\n\n"
        f"```yaml\n{text.rstrip()}\n```"
    )


def _llm(usage: LLMUsage) -> str:
    if usage.calls == 0:
        return "## LLM usage\n\nnone — deterministic remediators"
    return "\n".join(
        [
            "## LLM usage",
            "",
            "| calls | prompt tokens | completion tokens | cost |",
            "| --- | --- | --- | --- |",
            f"| {usage.calls} | {usage.prompt_tokens} | {usage.completion_tokens} | "
            f"${usage.cost_usd:.4f} |",
        ]
    )


def _footer(facts: DescriptionFacts) -> str:
    return (
        f"<sub>specfleet evaluation {facts.evaluation_id} · candidate "
        f"`{facts.candidate_commit[:12]}` · proposal key `{facts.proposal_key[:16]}`. "
        "Closing this merge request without merging means this exact change is not proposed "
        "again until its inputs change.</sub>"
    )


def _more(total: int) -> list[str]:
    return [f"\n… and {total - MAX_ROWS} more"] if total > MAX_ROWS else []


def _cell(text: str) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= MAX_CELL else flat[: MAX_CELL - 1] + "…"


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n\n… cut: {len(text) - limit} more characters in specfleet's record."
