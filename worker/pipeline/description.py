"""The merge request's description: everything a product owner needs to approve it alone.

Pure: built from the evaluation's facts, bounded in size (each table is capped and the
verification report is cut with a note if it ever grows past its share), and free of
anything secret (it is made of rule ids, package versions and the verification tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from specfleet.worker.pipeline.apply import DependencyChange
from specfleet.worker.pipeline.plan import LLMUsage
from specfleet.worker.verify.sandbox_policy import unsandboxed_banner

if TYPE_CHECKING:
    from specfleet.worker.pipeline.amend import AmendedSpec
    from specfleet.worker.verify.gate import Verdict

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
class SpecChangeFacts:
    """An owner's amendment as the merge request shows it, before the code."""

    amendment_id: str
    requested_by: str
    request: str
    why: str | None
    change: str
    new_requirements: tuple[tuple[str, str, tuple[str, ...]], ...]  # id, text, tests
    changed_requirements: tuple[tuple[str, str, tuple[str, ...]], ...]
    new_columns: tuple[tuple[str, str, str, str, str], ...]  # output, name, type, meaning, why
    changed_columns: tuple[tuple[str, str, str, str, str], ...]
    removed: tuple[str, ...]
    spec_diff: str
    # every requirement of the amended spec: id, new or not, (test, candidate outcome) pairs
    reverified: tuple[tuple[str, bool, tuple[tuple[str, str], ...]], ...] = ()


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
    verification: str  # specfleet.worker.report.render_verdict output
    llm: LLMUsage
    base_branch: str
    base_commit: str
    candidate_commit: str
    proposal_key: str
    # the planner's account of its change: (file, why, cited requirement and rule ids)
    rationale: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    plan_summary: str = ""
    spec_change: SpecChangeFacts | None = None  # set for an owner's amendment
    # every pin that changed, direct or transitive: (package, from, to, direct, file)
    pin_changes: tuple[tuple[str, str, str, bool, str], ...] = ()
    python_target: str = ""  # the Python the change was resolved for, e.g. python3.8


TRIGGERS = {
    "weekly": "the weekly re-evaluation",
    "policy": "a newly published policy set",
    "manual": "a manual evaluation",
    "amendment": "a spec amendment",
}


def render_description(facts: DescriptionFacts) -> str:
    if facts.spec_change is not None:
        return _render_amendment(facts, facts.spec_change)
    parts = [
        unsandboxed_banner(facts.verification),  # first, where nobody can miss it
        _summary(facts),
        _trigger(facts),
        _rules(facts),
        _rationale(facts),
        _changes(facts.changes) if facts.changes else "",
        _pin_changes(facts),
        _amendment(facts),
        "## Verification\n\n" + _bounded(facts.verification, MAX_VERIFICATION_CHARS),
        _llm(facts.llm),
        _footer(facts),
    ]
    return "\n\n".join(part.strip() for part in parts if part) + "\n"


def spec_change_facts(amended: AmendedSpec, verdict: Verdict) -> SpecChangeFacts:
    """What the owner's amendment changed in the spec, and each requirement's evidence."""
    from specfleet.worker.verify.gate import test_outcome

    checked = amended.checked
    spec = amended.spec
    requirements = {r.id: r for r in spec.requirements}
    columns = {(o.name, c.name): c for o in spec.outputs for c in o.columns}

    def requirement_row(rid: str) -> tuple[str, str, tuple[str, ...]]:
        r = requirements[rid]
        return (rid, r.text, tuple(r.tests))

    def column_row(key: tuple[str, str]) -> tuple[str, str, str, str, str]:
        c = columns[key]
        return (key[0], key[1], c.type, c.description or "", c.why or "")

    new = set(checked.new_requirements)
    reverified = tuple(
        (r.id, r.id in new, tuple((t, test_outcome(verdict.candidate, t)) for t in r.tests))
        for r in spec.requirements
    )
    draft = checked.draft
    return SpecChangeFacts(
        amendment_id=checked.amendment_id,
        requested_by=amended.requested_by,
        request=amended.ask.requirement,
        why=amended.ask.why,
        change=draft.amendment.change if draft.amendment else "",
        new_requirements=tuple(requirement_row(r) for r in checked.new_requirements),
        changed_requirements=tuple(requirement_row(r) for r in checked.changed_requirements),
        new_columns=tuple(column_row(k) for k in checked.new_columns),
        changed_columns=tuple(column_row(k) for k in checked.changed_columns),
        removed=checked.removed,
        spec_diff=amended.diff,
        reverified=reverified,
    )


def _render_amendment(facts: DescriptionFacts, change: SpecChangeFacts) -> str:
    """Spec change first, then the implementation, then the evidence."""
    parts = [
        unsandboxed_banner(facts.verification),
        f"{_cell(change.requested_by)} asked for a change to **{_cell(facts.product_name)}** "
        f"(`{facts.product_id}`): “{_cell(change.request)}”. specfleet amended the spec "
        f"({change.amendment_id}) and re-implemented the whole amended spec; every earlier "
        "requirement was verified again.",
        _spec_change(change),
        _rationale(facts),
        "## Verification\n\n" + _bounded(facts.verification, MAX_VERIFICATION_CHARS),
        _reverified(change),
        _trigger(facts),
        _llm(facts.llm),
        _footer(facts),
    ]
    return "\n\n".join(part.strip() for part in parts if part) + "\n"


def _spec_change(change: SpecChangeFacts) -> str:
    rows = [f"## Spec change: amendment {change.amendment_id}", ""]
    if change.changed_requirements or change.changed_columns or change.removed:
        touched = [r[0] for r in change.changed_requirements]
        touched += [c[1] for c in change.changed_columns] + list(change.removed)
        rows += [
            f"**This amendment changes earlier clauses, as the request explicitly asks: "
            f"{_cell(', '.join(touched))}.**",
            "",
        ]
    rows += [
        "| what | the owner's request |",
        "| --- | --- |",
        f"| requested | {_cell(change.request)} |",
    ]
    if change.why:
        rows.append(f"| why | {_cell(change.why)} |")
    rows.append(f"| change | {_cell(change.change)} |")
    for title, items in (
        ("New requirements", change.new_requirements),
        ("**Changed requirements**", change.changed_requirements),
    ):
        if items:
            rows += ["", title, "", "| id | requirement | proved by |", "| --- | --- | --- |"]
            rows += [
                f"| {rid} | {_cell(text)} | {_cell(', '.join(f'`{t}`' for t in tests))} |"
                for rid, text, tests in items[:MAX_ROWS]
            ]
    for title, columns in (
        ("New output columns", change.new_columns),
        ("**Changed output columns**", change.changed_columns),
    ):
        if columns:
            rows += [
                "",
                title,
                "",
                "| output | column | type | meaning | why |",
                "| --- | --- | --- | --- | --- |",
            ]
            rows += [
                f"| {_cell(o)} | `{_cell(n)}` | {_cell(t)} | {_cell(d)} | {_cell(w)} |"
                for o, n, t, d, w in columns[:MAX_ROWS]
            ]
    if change.removed:
        rows += ["", f"**Removed: {_cell(', '.join(change.removed))}**"]
    diff = _bounded(change.spec_diff, 12_000).replace("```", "'''")
    rows += ["", "<details><summary>Spec diff</summary>", "", f"```diff\n{diff.rstrip()}\n```"]
    rows += ["", "</details>"]
    return "\n".join(rows)


def _reverified(change: SpecChangeFacts) -> str:
    rows = [
        "## Requirements verified",
        "",
        "| requirement | | test | candidate |",
        "| --- | --- | --- | --- |",
    ]
    for rid, is_new, tests in change.reverified[:MAX_ROWS]:
        label = "new" if is_new else "earlier"
        for test, outcome in tests or (("(no test named)", "—"),):
            rows.append(f"| {rid} | {label} | `{_cell(test)}` | {_cell(outcome)} |")
    rows += _more(len(change.reverified))
    return "\n".join(rows)


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
            "| what | this evaluation |",
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


def _pin_changes(facts: DescriptionFacts) -> str:
    if not facts.pin_changes and not facts.python_target:
        return ""
    rows = ["## Every pin that changed", ""]
    if facts.python_target:
        rows += [
            f"Resolved for the product's own Python target: `{_cell(facts.python_target)}`.",
            "",
        ]
    if facts.pin_changes:
        rows += [
            "| package | from | to | direct or transitive | file |",
            "| --- | --- | --- | --- | --- |",
        ]
        for package, old, new, direct, file in facts.pin_changes[:MAX_ROWS]:
            kind = "direct" if direct else "transitive"
            rows.append(
                f"| {_cell(package)} | {_cell(old) or 'new'} | {_cell(new) or 'removed'} | "
                f"{kind} | {_cell(file)} |"
            )
        rows += _more(len(facts.pin_changes))
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
    path = {"llm": "the LLM's plan", "deterministic": "the deterministic remediators"}.get(
        usage.path, usage.path or "—"
    )
    rows = [
        "## LLM usage",
        "",
        "| produced by | rounds | calls | prompt tokens (cached) | completion tokens | cost |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {path} | {usage.rounds} | {usage.calls} | {usage.prompt_tokens} "
        f"({usage.cached_prompt_tokens} cached, "
        f"{usage.prompt_tokens - usage.cached_prompt_tokens} not) | "
        f"{usage.completion_tokens} | ${usage.cost_usd:.4f} |",
    ]
    if usage.llm_failure:
        instead = (
            "the deterministic remediators' change was proposed instead"
            if usage.path == "deterministic"
            else "this is what was verified instead"
        )
        rows += ["", f"**The LLM path failed** ({_cell(usage.llm_failure)}); {instead}."]
    return "\n".join(rows)


def _footer(facts: DescriptionFacts) -> str:
    # plain Markdown (a rule and emphasis): raw HTML such as <sub> shows as text wherever
    # HTML is off, as in the console and `specfleet mr show`
    return (
        f"---\n\n*specfleet evaluation {facts.evaluation_id} · candidate "
        f"`{facts.candidate_commit[:12]}` · proposal key `{facts.proposal_key[:16]}`. "
        "Closing this merge request without merging means this exact change is not proposed "
        "again until its inputs change.*"
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
