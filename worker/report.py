"""The merge-request description of a verification: Markdown tables a product owner reads.

Every section answers one question an owner asks before clicking "merge": does it still build
and pass its tests, do the outputs keep their contract, did any data change, does it still
fail safely, and which policy findings does it resolve or introduce.
"""

from __future__ import annotations

from specfleet.worker.verify.gate import Verdict
from specfleet.worker.verify.model import RunResult, SideResult

MAX_ROWS = 20  # per table; the rest is counted, not listed


def render_verdict(verdict: Verdict) -> str:
    parts = [_summary(verdict), _tests(verdict), _contract(verdict), _data(verdict)]
    parts += [_failure_modes(verdict), _findings(verdict), _notes(verdict)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _summary(verdict: Verdict) -> str:
    if verdict.publishable:
        head = "**Verification: passed.** The candidate builds, passes its tests, keeps every "
        head += "output's contract and data, and honours every failure mode."
    else:
        head = "**Verification: failed.** " + "; ".join(verdict.reasons) + "."
    return head


def _run_cell(run: RunResult | None) -> str:
    if run is None:
        return "not run"
    if run.timed_out or run.exit_code is None:
        return f"killed ({run.killed_reason or 'limit'})"
    status = "ok" if run.exit_code == 0 else f"exit {run.exit_code}"
    return f"{status}, {run.duration_seconds:.1f} s"


def _tests_cell(run: RunResult | None) -> str:
    if run is None:
        return "no test command"
    if run.junit is not None:
        summary = run.junit
        text = f"{summary.passed} passed, {summary.failed} failed"
        if summary.errors:
            text += f", {summary.errors} errors"
        if summary.skipped:
            text += f", {summary.skipped} skipped"
        return text
    return _run_cell(run)


def _tests(verdict: Verdict) -> str:
    rows = [
        "### Build and tests",
        "",
        "| | baseline | candidate |",
        "| --- | --- | --- |",
        f"| commit | {_commit(verdict.baseline)} | {_commit(verdict.candidate)} |",
        f"| build | {_run_cell(verdict.baseline.build)} | {_run_cell(verdict.candidate.build)} |",
        f"| tests | {_tests_cell(verdict.baseline.tests)} | {_tests_cell(verdict.candidate.tests)} |",
    ]
    for side in (verdict.baseline, verdict.candidate):
        if side.problem:
            rows.append(f"\n{side.label} could not be verified: {_cell(side.problem)}")
    reused = [side.label for side in (verdict.baseline, verdict.candidate) if side.reused]
    if reused:
        rows.append(
            f"\n{' and '.join(reused).capitalize()}: results of an identical run this week "
            "(same code, environment, fixtures and spec) were reused."
        )
    failed = [
        case
        for case in (
            verdict.candidate.tests.junit.cases
            if verdict.candidate.tests and verdict.candidate.tests.junit
            else ()
        )
        if case.outcome in ("failed", "error")
    ]
    if failed:
        rows += ["", "| failing test | message |", "| --- | --- |"]
        rows += [f"| `{case.name}` | {_cell(case.message)} |" for case in failed[:MAX_ROWS]]
    return "\n".join(rows)


def _commit(side: SideResult) -> str:
    return f"`{side.commit[:12]}`" if side.commit else "working tree"


def _contract(verdict: Verdict) -> str:
    rows = ["### Output contracts"]
    if not verdict.contract:
        names = ", ".join(sorted(verdict.candidate.schemas)) or "none"
        return "\n".join([*rows, "", f"Every output ({names}) matches the spec and the baseline."])
    rows += ["", "| level | output | column | change | detail |", "| --- | --- | --- | --- | --- |"]
    ordered = sorted(verdict.contract, key=lambda d: ("error", "warning", "info").index(d.level))
    for difference in ordered[:MAX_ROWS]:
        rows.append(
            f"| {difference.level} | {difference.output} | {difference.column or ''} | "
            f"{difference.kind} | {_cell(difference.message)} |"
        )
    rows += _more(len(ordered))
    return "\n".join(rows)


def _data(verdict: Verdict) -> str:
    rows = ["### Data on the fixtures"]
    if not verdict.data:
        return "\n".join([*rows, "", "Not compared (the baseline produced no outputs)."])
    rows += [
        "",
        "| output | baseline rows | candidate rows | only in baseline | only in candidate | changed rows | changed columns |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for diff in verdict.data:
        columns = ", ".join(f"{name} ({count})" for name, count in diff.changed_columns.items())
        rows.append(
            f"| {diff.output} | {diff.baseline_rows} | {diff.candidate_rows} | "
            f"{diff.only_in_baseline} | {diff.only_in_candidate} | {diff.changed_rows} | "
            f"{columns or '-'} |"
        )
    examples = [change for diff in verdict.data for change in diff.examples]
    if examples:
        rows += ["", "| row | column | baseline | candidate |", "| --- | --- | --- | --- |"]
        for change in examples[:MAX_ROWS]:
            key = ", ".join(f"{name}={value}" for name, value in change.key)
            rows.append(
                f"| {_cell(key)} | {change.column} | {_cell(change.baseline)} | {_cell(change.candidate)} |"
            )
    return "\n".join(rows)


def _failure_modes(verdict: Verdict) -> str:
    modes = verdict.candidate.failure_modes
    if not modes:
        return "### Failure modes\n\nThe spec declares none."
    rows = [
        "### Failure modes",
        "",
        "| id | provoked | expected | got | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for mode in modes:
        got = _run_cell(mode.run)
        result = "held" if mode.passed else "**broken**: " + _cell("; ".join(mode.problems))
        rows.append(f"| {mode.id} | {mode.provoked} | {_cell(mode.expected)} | {got} | {result} |")
    return "\n".join(rows)


def _findings(verdict: Verdict) -> str:
    if not verdict.findings_before and not verdict.findings_after:
        return ""
    rows = [
        "### Policy re-scan",
        "",
        f"Resolved: {len(verdict.resolved)}. Introduced: {len(verdict.introduced)}.",
    ]
    listed = [("resolved", f) for f in verdict.resolved] + [
        ("introduced", f) for f in verdict.introduced
    ]
    if listed:
        rows += ["", "| | rule | where | finding |", "| --- | --- | --- | --- |"]
        for label, finding in listed[:MAX_ROWS]:
            rows.append(
                f"| {label} | {finding.rule_id} | {finding.location} | {_cell(finding.message)} |"
            )
    return "\n".join(rows)


def _notes(verdict: Verdict) -> str:
    if not verdict.warnings:
        return ""
    return "### Notes\n\n" + "\n".join(f"- {_cell(warning)}" for warning in verdict.warnings)


def _more(count: int) -> list[str]:
    return [f"\n…and {count - MAX_ROWS} more."] if count > MAX_ROWS else []


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipes, no line breaks, bounded)."""
    flat = " ".join(text.replace("|", "\\|").split())
    return flat if len(flat) <= 300 else flat[:297] + "..."
