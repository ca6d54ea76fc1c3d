"""Which findings a change resolved or introduced: a moved finding is neither."""

from __future__ import annotations

from specfleet.policies.findings import Finding, unmatched

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


def test_dependency_findings_are_what_they_are_about_not_where_they_sit() -> None:
    """Issue 16: (rule, package, advisory); a regenerated lock moves lines, not identities."""

    def dep(file: str, line: int, advisory: str | None = "GHSA-aaaa", version: str = "14.0.1"):
        return Finding(
            "ORG-DEP-001",
            "dependency",
            "high",
            f"pyarrow {version} has {advisory}",
            file,
            line,
            package="pyarrow",
            advisory=advisory,
        )

    assert unmatched([dep("requirements.txt", 3)], [dep("requirements.txt", 40)]) == ()
    assert unmatched([dep("requirements.txt", 3)], [dep("requirements.lock", 7)]) == ()
    # the same advisory on an upgraded pin is still that finding
    assert unmatched([dep("requirements.txt", 3, version="15.0.0")], [dep("r.txt", 3)]) == ()
    new = dep("requirements.txt", 3, advisory="GHSA-bbbb")
    assert unmatched([new], [dep("requirements.txt", 3)]) == (new,)
    # a finding without a package (older records) still ignores its line
    old = Finding("ORG-DEP-001", "dependency", "high", "pyarrow is old", "requirements.txt", 3)
    assert (
        unmatched([old], [Finding("ORG-DEP-001", "dependency", "high", "x", "requirements.txt", 9)])
        == ()
    )
    assert dep("a.txt", 1).identity == dep("b.txt", 99).identity
    assert dep("a.txt", 1).identity != new.identity


def test_code_findings_are_keyed_by_their_normalised_snippet() -> None:
    def at(line: int, snippet: str) -> Finding:
        return Finding("ORG-PY-010", "semgrep", "high", NAIVE, "p.py", line, snippet=snippet)

    assert unmatched([at(9, "x = datetime.now()")], [at(30, "x  =  datetime.now()")]) == ()
    other = at(9, "y = datetime.utcnow()")
    assert unmatched([other], [at(9, "x = datetime.now()")]) == (other,)


def test_errors_never_count() -> None:
    error = Finding("ORG-PY-010", "semgrep", "high", "semgrep failed", status="error")
    assert unmatched([error], []) == ()
