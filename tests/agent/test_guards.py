"""The guard rails one by one: each pure rule refuses what it exists for and lets the rest pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from specfleet.agent.guards import (
    GuardContext,
    GuardLimits,
    append_amendment,
    content_problem,
    path_problem,
    protected_problem,
    review_plan,
    spec_problem,
    symlink_problem,
    syntax_problem,
    write_staged,
)
from specfleet.agent.plan import AmendmentDraft, Edit, Plan
from specfleet.core.spec.loader import check_spec_bytes
from tests.conftest import EXAMPLES

SPEC = (EXAMPLES / "store_footfall" / "dataproduct.yaml").read_text()


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("../x.py", "leaves the repository"),
        ("a/../../x.py", "leaves the repository"),
        ("/etc/passwd", "absolute"),
        ("C:/x.py", "absolute"),
        ("a\\b.py", "backslash"),
        ("./a.py", "'.' segments"),
        ("a//b.py", "empty or '.' segments"),
        (".git/hooks/pre-commit", ".git"),
        ("sub/.Git/config", ".git"),
        (".gitlab-ci.yml", "CI configuration"),
        (".github/workflows/x.yml", "CI configuration"),
        ("a\u200bb.py", "invisible"),
        ("a\nb.py", "control"),
        ("", "empty"),
        ("a/" + "x" * 300 + ".py", "too long"),
    ],
)
def test_paths_that_leave_or_reach_dangerous_places_are_refused(path: str, fragment: str) -> None:
    """Traversal, absolute paths, .git, CI configuration and hidden characters are refused."""
    reason = path_problem(path)
    assert reason is not None and fragment in reason


@pytest.mark.parametrize(
    "path", ["footfall/build.py", "README.md", "docs/.github.md", "gitlab-ci.md"]
)
def test_plain_repository_paths_pass(path: str) -> None:
    """Ordinary relative paths, including ones that merely resemble CI names, pass."""
    assert path_problem(path) is None


def test_protected_globs_cover_whole_folders() -> None:
    """A policy's protected pattern covers the folder and everything under it."""
    assert protected_problem("sql/prod/a.sql", ["sql/prod/**"]) is not None
    assert protected_problem("sql/prod", ["sql/prod/*"]) is not None
    assert protected_problem("sql/dev/a.sql", ["sql/prod/**"]) is None


def test_a_symlink_anywhere_on_the_path_is_refused(tmp_path: Path) -> None:
    """Writing through a symlink (out of the repository or not) is refused, naming the link."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "out").symlink_to(tmp_path)
    (repo / "alias.py").symlink_to(repo / "pkg")
    assert "pointing outside" in (symlink_problem(repo, "pkg/out/x.py") or "")
    assert "pointing inside" in (symlink_problem(repo, "alias.py") or "")
    assert symlink_problem(repo, "pkg/new.py") is None
    (repo / "notes.txt").write_text("x")
    assert "is a file, not a folder" in (symlink_problem(repo, "notes.txt/x.py") or "")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("token = 'glpat-abcdefghijklmnopqrstu'", "secret"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "private key"),
        ("x = 1\x00", "binary"),
        ("if access_level != 'user\u202e \u2066':", "bidirectional"),
        ("canary-value-1234", "configured secret"),
    ],
)
def test_content_with_secrets_binary_or_bidi_is_refused(text: str, fragment: str) -> None:
    """Added text carrying a token, a key, NUL bytes, bidi controls or a known secret is refused."""
    reason = content_problem(text, ["canary-value-1234"])
    assert reason is not None and fragment in reason


def test_syntax_is_parsed_never_run(tmp_path: Path) -> None:
    """Broken Python, YAML and JSON are refused with the line; the code is not executed."""
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')\n"
    assert syntax_problem("a.py", code) is None and not marker.exists()
    assert "line 2" in (syntax_problem("a.py", "x = 1\ndef f(:\n") or "")
    assert "not valid YAML" in (syntax_problem("a.yaml", "a: [1\n") or "")
    assert "not valid JSON" in (syntax_problem("a.json", "{,}") or "")
    assert syntax_problem("a.txt", "anything {") is None


def test_the_spec_may_only_gain_one_appended_amendment() -> None:
    """Requirements, outputs and failure modes stay; one amendment may be appended."""
    draft = AmendmentDraft(requirement="Keep current.", change="Nothing visible.", why="ORG-X.")
    amended = append_amendment(SPEC, draft, dt.date(2026, 11, 23))
    assert spec_problem(SPEC, amended) is None
    spec = check_spec_bytes(amended.encode(), "x").spec
    assert spec is not None and spec.amendments[-1].id == "A4"
    assert spec.amendments[-1].date == dt.date(2026, 11, 23)
    twice = append_amendment(amended, draft, dt.date(2026, 11, 23))
    assert "at most one" in (spec_problem(SPEC, twice) or "")
    changed = SPEC.replace("THE SYSTEM SHALL NOT count exits", "THE SYSTEM SHALL count exits")
    assert "requirements" in (spec_problem(SPEC, changed) or "")
    assert "invalid" in (spec_problem(SPEC, "spec_version: 1\n") or "")


def test_an_amendment_is_appended_when_amendments_is_not_the_last_section() -> None:
    """Appending keeps the spec valid wherever the amendments section sits."""
    head, amendments = SPEC.split("amendments:\n", 1)
    reordered = "amendments:\n" + amendments + "\n" + head
    draft = AmendmentDraft(requirement="r", change="c", why="w")
    amended = append_amendment(reordered, draft, dt.date(2026, 1, 1))
    assert spec_problem(reordered, amended) is None


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("X = 1\nY = 2\n")
    (repo / "dataproduct.yaml").write_text(SPEC)
    return repo


def test_one_refused_edit_stages_nothing(tmp_path: Path) -> None:
    """A plan is all or nothing: one refused edit leaves nothing to write."""
    repo = _repo(tmp_path)
    plan = Plan(
        edits=[
            Edit(kind="replace", path="pkg/a.py", search="X = 1\n", replace="X = 10\n"),
            Edit(kind="write", path=".gitlab-ci.yml", content="x: 1\n"),
        ]
    )
    review = review_plan(plan, repo, GuardContext())
    assert [r.accepted for r in review.edits] == [True, False]
    assert review.staged == {} and not review.accepted
    assert "edit 2 (write .gitlab-ci.yml): rejected" in review.feedback()


def test_an_accepted_plan_is_staged_then_written(tmp_path: Path) -> None:
    """Edits to one file apply in order; the amendment lands in the spec; writing is explicit."""
    repo = _repo(tmp_path)
    plan = Plan(
        edits=[
            Edit(kind="replace", path="pkg/a.py", search="X = 1\n", replace="X = 10\n"),
            Edit(kind="replace", path="pkg/a.py", search="X = 10\n", replace="X = 11\n"),
            Edit(kind="write", path="pkg/b.py", content="Z = 3\n"),
        ],
        amendment=AmendmentDraft(requirement="r", change="c", why="w"),
    )
    review = review_plan(plan, repo, GuardContext())
    assert review.accepted, review.feedback()
    assert (repo / "pkg" / "a.py").read_text() == "X = 1\nY = 2\n"  # nothing written yet
    written = write_staged(repo, review.staged)
    assert written == ["dataproduct.yaml", "pkg/a.py", "pkg/b.py"]
    assert (repo / "pkg" / "a.py").read_text() == "X = 11\nY = 2\n"
    assert "id: A4" in (repo / "dataproduct.yaml").read_text()


def test_limits_on_files_and_bytes(tmp_path: Path) -> None:
    """More files or bytes than the limits allow are refused from the first edit over them."""
    repo = _repo(tmp_path)
    limits = GuardLimits(max_files=2, max_bytes_written=100)
    many = Plan(
        edits=[Edit(kind="write", path=f"pkg/m{i}.py", content="x = 1\n") for i in range(3)]
    )
    review = review_plan(many, repo, GuardContext(limits=limits))
    assert [r.accepted for r in review.edits] == [True, True, False]
    big = Plan(edits=[Edit(kind="write", path="pkg/big.py", content="x = 1\n" * 30)])
    assert "more than 100 bytes" in (
        review_plan(big, repo, GuardContext(limits=limits)).edits[0].reason or ""
    )


def test_a_missed_search_feeds_back_the_nearest_text(tmp_path: Path) -> None:
    """A SEARCH that is not in the file is refused with the nearest passage and its line."""
    repo = _repo(tmp_path)
    plan = Plan(edits=[Edit(kind="replace", path="pkg/a.py", search="Y = 3\n", replace="Y = 4\n")])
    reason = review_plan(plan, repo, GuardContext()).edits[0].reason or ""
    assert "not in the file" in reason and "line 2" in reason and "Y = 2" in reason
