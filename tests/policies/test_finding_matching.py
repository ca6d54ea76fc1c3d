"""Which findings a change resolved or introduced: a moved finding is neither."""

from __future__ import annotations

from policies.findings import Finding, unmatched

NAIVE = "This makes a naive timestamp (no time zone)."


def code(line: int, message: str = NAIVE, file: str = "pipeline/build.py") -> Finding:
    return Finding("ORG-PY-010", "semgrep", "high", message, file, line)


def test_a_finding_moved_by_an_edit_above_it_is_neither_resolved_nor_introduced() -> None:
    before, after = [code(49)], [code(50)]
    assert unmatched(before, after) == () and unmatched(after, before) == ()


def test_a_second_occurrence_is_new_and_a_removed_one_resolved() -> None:
    before, after = [code(49)], [code(50), code(80)]
    assert unmatched(after, before) == (code(80),)  # the exact line is matched first
    assert unmatched(before, after) == ()
    assert unmatched([code(10), code(20)], [code(11)]) == (code(20),)


def test_another_file_or_rule_message_is_another_finding() -> None:
    assert unmatched([code(49)], [code(49, file="pipeline/other.py")]) == (code(49),)
    assert unmatched([code(49)], [code(49, message="another problem")]) == (code(49),)


def test_dependency_findings_keep_their_pin_identity_and_errors_never_count() -> None:
    pin = Finding(
        "ORG-DEP-001", "dependency", "high", "pyarrow 14.0.1 is old", "requirements.txt", 3
    )
    moved = Finding(
        "ORG-DEP-001", "dependency", "high", "pyarrow 14.0.1 is old", "requirements.txt", 4
    )
    assert unmatched([pin], [moved]) == (pin,)
    error = Finding("ORG-PY-010", "semgrep", "high", "semgrep failed", status="error")
    assert unmatched([error], []) == ()
