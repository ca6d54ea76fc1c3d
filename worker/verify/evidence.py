"""The candidate must run at least the tests the baseline ran, and skip no more of them.

The guard rails (:mod:`specfleet.agent.protected`) keep a plan from editing tests and their
configuration; this is the second line, judged on what pytest actually did: a candidate can
still lose tests in ways no file rule sees (product code that makes a collection fail, an
import that raises ``pytest.skip`` at module level, a dependency change that disables a
plugin). So the JUnit reports of both sides are compared: every test id the baseline
collected must be collected by the candidate, the candidate may not run fewer tests, and it
may not skip or xfail more of them (pytest reports xfail as skipped).
"""

from __future__ import annotations

from specfleet.worker.verify.model import SideResult, TestSummary

MAX_NAMED = 5


def weaker_test_evidence(baseline: SideResult, candidate: SideResult) -> list[str]:
    """Why the candidate's test evidence is weaker than the baseline's (empty: it is not)."""
    before = _summary(baseline)
    if before is None:
        return []  # the baseline has no test report: nothing to compare against
    after = _summary(candidate)
    if after is None:
        return ["the baseline's tests wrote a report, the candidate's did not"]
    problems = []
    if after.total < before.total:
        problems.append(
            f"the candidate runs fewer tests than the baseline ({after.total} < {before.total})"
        )
    missing = _missing(before, after)
    if missing:
        problems.append(f"tests the baseline ran are gone from the candidate: {_named(missing)}")
    if after.skipped > before.skipped:
        problems.append(
            f"the candidate skips or xfails more tests than the baseline "
            f"({after.skipped} > {before.skipped})"
        )
    newly_skipped = _newly_skipped(before, after)
    if newly_skipped:
        problems.append(f"tests that ran on the baseline are skipped: {_named(newly_skipped)}")
    return problems


def _summary(side: SideResult) -> TestSummary | None:
    return side.tests.junit if side.tests is not None else None


def _complete(summary: TestSummary) -> bool:
    """The report lists every case (long reports keep failures and drop passing cases)."""
    return len(summary.cases) == summary.total


def _missing(before: TestSummary, after: TestSummary) -> list[str]:
    if not (_complete(before) and _complete(after)):
        return []
    present = {case.name for case in after.cases}
    return sorted(case.name for case in before.cases if case.name not in present)


def _newly_skipped(before: TestSummary, after: TestSummary) -> list[str]:
    ran = {case.name for case in before.cases if case.outcome != "skipped"}
    return sorted(
        case.name for case in after.cases if case.outcome == "skipped" and case.name in ran
    )


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
