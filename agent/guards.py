"""Guard rails: every edit the model proposes is judged here before a byte is written.

Each rule is a small pure function returning the reason for refusing (``None`` when the
edit passes); :func:`review_plan` runs them all over a plan against a read-only view of the
repository and stages the resulting file contents in memory. Only a plan whose every edit is
accepted is ever written (see :func:`write_staged`), and nothing a plan says is executed:
Python, YAML and JSON are *parsed* (``ast.parse``, ``yaml.safe_load``, ``json.loads``) to reject
broken edits early, never run.

What is refused, and why:

- paths that are empty, absolute, contain ``..``, ``.`` or empty segments, backslashes,
  control or invisible characters, or go through a symlink (the write would land elsewhere);
- anything under ``.git/`` (hooks run code on the next git command), CI configuration
  (it runs with the project's CI credentials), and files the policy marks protected;
- deleting the spec or the tests its requirements name;
- binary content, bidi control characters (Trojan Source), secrets (token shapes, private
  keys, configured secret values);
- more files, more bytes, or larger files than the limits; whole-file writes of large files;
- Python, YAML or JSON that no longer parses;
- a spec whose anything-but-amendments changed, or that gained more than one amendment.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from specfleet.agent.edits import EditMiss, apply_search_replace
from specfleet.agent.paths import confusable_problem, repository_files, spelling_problem
from specfleet.agent.plan import AmendmentDraft, Edit, Plan
from specfleet.agent.plan_checks import claims_problem, whole_file_problems
from specfleet.agent.protected import (
    CI_REASON,
    Evidence,
    ci_configuration,
    evidence_from_spec,
    glob_match,
    protection_problem,
)
from specfleet.agent.requirements_edits import is_requirements_file, requirements_problem
from specfleet.agent.sanitise import BIDI_CONTROLS, INVISIBLE
from specfleet.core.secrets import contains_known_secret, find_secret_shapes
from specfleet.core.spec.amendment_text import append_amendment as append_amendment_text
from specfleet.core.spec.loader import check_spec_bytes
from specfleet.core.yamldoc import YamlTooLarge, safe_load_all_bounded

SPEC_PATH = "dataproduct.yaml"

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class GuardLimits:
    """Bounds on one plan; ``protected`` are glob patterns a policy marks off-limits."""

    max_files: int = 20
    max_bytes_written: int = 256 * 1024
    max_file_bytes: int = 512 * 1024
    max_whole_file_bytes: int = 16 * 1024
    protected: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardContext:
    """What the rules need besides the plan: the spec path, secrets, tests requirements name."""

    spec_path: str = SPEC_PATH
    known_secrets: tuple[str, ...] = ()
    requirement_tests: frozenset[str] = frozenset()
    limits: GuardLimits = field(default_factory=GuardLimits)
    today: dt.date = field(default_factory=dt.date.today)
    # False while implementing an owner's amendment: the spec already carries it, drafted and
    # checked for conflicts in its own step, so the plan may not append another
    amendment_allowed: bool = True
    # the spec's fixtures and requirement tests; None: read from the repository's spec
    evidence: Evidence | None = None
    # rule ids the baseline's policy scan reported; None: unknown (citations not checked)
    baseline_rules: frozenset[str] | None = None


@dataclass(frozen=True)
class EditReview:
    index: int  # 1-based position in the plan; 0 for the plan's amendment or the plan itself
    kind: str
    path: str
    reason: str | None  # None: accepted

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Review:
    """The verdict on every edit, and the staged contents (None: delete) when all passed."""

    edits: tuple[EditReview, ...]
    staged: dict[str, str | None]
    tolerant_matches: int = 0

    @property
    def accepted(self) -> bool:
        return all(review.accepted for review in self.edits)

    @property
    def rejected(self) -> tuple[EditReview, ...]:
        return tuple(review for review in self.edits if not review.accepted)

    def feedback(self) -> str:
        return "\n".join(_feedback_line(review) for review in self.rejected)


def _feedback_line(review: EditReview) -> str:
    if review.kind == "plan":
        return f"- the plan: rejected: {review.reason}"
    if not review.index:
        return f"- amendment: rejected: {review.reason}"
    if review.kind == "result":
        return f"- {review.path} after all edits (last: edit {review.index}): {review.reason}"
    return f"- edit {review.index} ({review.kind} {review.path}): rejected: {review.reason}"


# --- path rules -------------------------------------------------------------------------


def path_problem(path: str) -> str | None:
    """Lexical checks: the path must be a plain relative path inside the repository."""
    if not path or not path.strip():
        return "the path is empty"
    if PATH_CONTROL.search(path) or INVISIBLE.search(path):
        return "the path contains control or invisible characters"
    if "\\" in path:
        return "the path contains a backslash; use / separators"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or path.startswith("~"):
        return "absolute paths are refused; give a path relative to the repository"
    parts = path.split("/")
    if len(path) > 1024 or any(len(part.encode()) > 255 for part in parts):
        return "the path is too long"
    if ".." in parts:
        return "the path leaves the repository ('..')"
    if any(part in ("", ".") for part in parts):
        return "the path has empty or '.' segments; give a plain relative path"
    if any(part.lower() == ".git" for part in parts):
        return "files under .git/ are never edited"
    if ci_configuration(path):
        return CI_REASON
    return spelling_problem(path)


def protected_problem(path: str, protected: Sequence[str]) -> str | None:
    for pattern in protected:
        if glob_match(path, pattern):
            return f"the policy protects {pattern}"
    return None


def symlink_problem(repo: Path, path: str) -> str | None:
    """No component of the path may be a symlink (the write would land where it points)."""
    root = repo.resolve()
    current = root
    parts = path.split("/")
    for index, part in enumerate(parts):
        current = current / part
        if index < len(parts) - 1 and current.exists() and not current.is_dir():
            return f"{current.relative_to(root)} is a file, not a folder"
        if current.is_symlink():
            target = current.resolve()
            inside = target == root or root in target.parents
            where = "inside" if inside else "outside"
            return f"{current.relative_to(root)} is a symlink (pointing {where} the repository)"
    return None


# --- content rules ----------------------------------------------------------------------


def content_problem(text: str, known_secrets: Iterable[str] = ()) -> str | None:
    """Text the model adds: no binary, no bidi controls, no secrets."""
    if "\x00" in text or CONTROL.search(text):
        return "binary or control characters in the content"
    if BIDI_CONTROLS.search(text):
        return "bidirectional control characters in the content (they hide what code does)"
    if contains_known_secret(text, known_secrets):
        return "the content contains a configured secret"
    shapes = find_secret_shapes(text)
    if shapes:
        return f"the content looks like it carries a secret ({', '.join(shapes)})"
    return None


def syntax_problem(path: str, text: str) -> str | None:
    """Parse (never run) Python, YAML and JSON files; the reason names the line."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".py", ".pyi"):
            ast.parse(text, filename=path)
        elif suffix in (".yaml", ".yml"):
            safe_load_all_bounded(text, path)
        elif suffix == ".json":
            json.loads(text)
    except SyntaxError as error:
        return f"the result is not valid Python: line {error.lineno}: {error.msg}"
    except YamlTooLarge as error:
        return f"the result is not acceptable YAML: {error.problem.render()}"
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        return f"the result is not valid YAML: {where}{problem}"
    except json.JSONDecodeError as error:
        return f"the result is not valid JSON: line {error.lineno}: {error.msg}"
    return None


def spec_problem(old: str, new: str) -> str | None:
    """The spec may only gain one appended amendment; everything else stays as it was."""
    before = check_spec_bytes(old.encode(), SPEC_PATH)
    after = check_spec_bytes(new.encode(), SPEC_PATH)
    if after.spec is None:
        first = after.problems[0].render() if after.problems else "invalid"
        return f"the spec would become invalid: {first}"
    if before.spec is None:
        return "the current spec is invalid, so no change to it can be judged"
    old_data = before.spec.model_dump(mode="json")
    new_data = after.spec.model_dump(mode="json")
    old_amendments = old_data.pop("amendments")
    new_amendments = new_data.pop("amendments")
    for section in ("requirements", "outputs", "failure_modes"):
        if old_data.get(section) != new_data.get(section):
            return f"the spec's {section.replace('_', ' ')} must not change"
    if old_data != new_data:
        changed = sorted(key for key in old_data if old_data[key] != new_data.get(key))
        return f"the spec may only gain an amendment; {', '.join(changed)} changed"
    if new_amendments[: len(old_amendments)] != old_amendments:
        return "existing amendments must not change"
    if len(new_amendments) - len(old_amendments) > 1:
        return "at most one amendment may be appended"
    return None


def append_amendment(spec_text: str, draft: AmendmentDraft, today: dt.date) -> str:
    """The spec text with the draft appended as the next amendment (A<n+1>), formatting kept."""
    checked = check_spec_bytes(spec_text.encode(), SPEC_PATH)
    entry = {
        "id": checked.spec.next_amendment_id() if checked.spec is not None else "A1",
        "date": today.isoformat(),
        "requirement": draft.requirement,
        "change": draft.change,
        "why": draft.why,
    }
    return append_amendment_text(spec_text, entry)[0]


# --- the whole plan -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    """What every edit's review needs to know of the repository, read once per plan."""

    repo: Path
    context: GuardContext
    evidence: Evidence
    existing: tuple[str, ...]


def review_plan(plan: Plan, repo: Path, context: GuardContext) -> Review:
    """Judge every edit (and the amendment) against ``repo``; reads files, writes nothing.

    After the edits one by one: the claims of the plan, and the resulting content of every
    file it changes (what two edits assemble together is refused like what one writes).
    """
    limits = context.limits
    scope = _scope(repo, context)
    staged: dict[str, str | None] = {}
    reviews: list[EditReview] = []
    written = 0
    tolerant = 0
    for index, edit in enumerate(plan.edits, start=1):
        reason, result, was_tolerant = _review_edit(edit, scope, staged)
        if reason is None:
            payload = len((edit.replace or "").encode()) + len((edit.content or "").encode())
            touched = set(staged) | {edit.path}
            if written + payload > limits.max_bytes_written:
                reason = f"the plan writes more than {limits.max_bytes_written} bytes"
            elif len(touched) > limits.max_files:
                reason = f"the plan changes more than {limits.max_files} files"
            else:
                written += payload
                staged[edit.path] = result
                tolerant += was_tolerant
        reviews.append(EditReview(index, edit.kind, edit.path, reason))
    if plan.amendment is not None:
        reason = (
            _review_amendment(plan.amendment, repo, context, staged)
            if context.amendment_allowed
            else "the spec already carries this change's amendment; set amendment to null"
        )
        if reason is not None:
            reviews.append(EditReview(0, "amend", context.spec_path, reason))
    reviews.extend(_plan_reviews(plan, scope, staged))
    if any(review.reason for review in reviews):
        return Review(tuple(reviews), {}, tolerant)
    return Review(tuple(reviews), staged, tolerant)


def _scope(repo: Path, context: GuardContext) -> _Scope:
    evidence = context.evidence
    spec_file = repo / context.spec_path
    if evidence is None:
        checked = (
            check_spec_bytes(spec_file.read_bytes(), context.spec_path)
            if spec_file.is_file()
            else None
        )
        evidence = evidence_from_spec(checked.spec if checked else None)
    if context.requirement_tests:
        evidence = Evidence(
            evidence.fixtures, evidence.requirement_tests | context.requirement_tests
        )
    return _Scope(repo, context, evidence, tuple(repository_files(repo)))


def _plan_reviews(plan: Plan, scope: _Scope, staged: dict[str, str | None]) -> list[EditReview]:
    """Refusals of the plan as a whole: its claims, and its resulting files."""
    reviews = []
    spec_ids = _spec_ids(scope)
    claim = claims_problem(plan, spec_ids, scope.context.baseline_rules)
    if claim is not None:
        reviews.append(EditReview(0, "plan", "", claim))
    originals = {path: _original(scope.repo, path) for path in staged}
    last_edit = {edit.path: index for index, edit in enumerate(plan.edits, start=1)}
    for problem in whole_file_problems(staged, originals, scope.context.known_secrets):
        reviews.append(
            EditReview(last_edit.get(problem.path, 0), "result", problem.path, problem.reason)
        )
    return reviews


def _spec_ids(scope: _Scope) -> frozenset[str]:
    text = _original(scope.repo, scope.context.spec_path)
    checked = check_spec_bytes(text.encode(), scope.context.spec_path) if text else None
    if checked is None or checked.spec is None:
        return frozenset()
    spec = checked.spec
    return frozenset([r.id for r in spec.requirements] + [str(a.id) for a in spec.amendments])


def _original(repo: Path, path: str) -> str | None:
    current = _current(repo, path, {})
    return current if isinstance(current, str) else None


def _review_edit(
    edit: Edit, scope: _Scope, staged: dict[str, str | None]
) -> tuple[str | None, str | None, bool]:
    path, repo, context = edit.path, scope.repo, scope.context
    reason = (
        path_problem(path)
        or protected_problem(path, context.limits.protected)
        or symlink_problem(repo, path)
    )
    if reason:
        return reason, None, False
    current = _current(repo, path, staged)
    if isinstance(current, _Unreadable):
        return current.reason, None, False
    original = _original(repo, path)
    if original is None and path not in staged:
        reason = confusable_problem(path, scope.existing)
        if reason:
            return reason, None, False
    if edit.kind == "delete":
        return _review_delete(path, current, original, scope), None, False
    if edit.kind == "write":
        if edit.content is None:
            return "a write needs content", None, False
        new = edit.content
        size = max(len(new.encode()), len((current or "").encode()))
        if size > context.limits.max_whole_file_bytes:
            return (
                f"whole-file writes are for files up to {context.limits.max_whole_file_bytes} "
                "bytes; use SEARCH/REPLACE edits",
                None,
                False,
            )
        added, tolerant = new, False
    else:
        if edit.search is None or edit.replace is None:
            return "a replace needs search and replace text", None, False
        if current is None:
            return "there is no such file; use a write to create it", None, False
        outcome = apply_search_replace(current, edit.search, edit.replace)
        if isinstance(outcome, EditMiss):
            return outcome.render(), None, False
        new, added, tolerant = outcome.text, edit.replace, outcome.tolerant
    reason = content_problem(added, context.known_secrets) or _result_rules(
        edit.kind, path, original, new, scope
    )
    return reason, (new if reason is None else None), tolerant


def _review_delete(
    path: str, current: str | None, original: str | None, scope: _Scope
) -> str | None:
    if path == scope.context.spec_path:
        return "the spec is never deleted"
    reason = protection_problem(path, "delete", original, None, scope.evidence)
    if reason is None and current is None:
        return "there is no such file to delete"
    return reason


def _result_rules(
    kind: str, path: str, original: str | None, new: str, scope: _Scope
) -> str | None:
    """Rules on the file as the edit leaves it: evidence, pins, size, spec, syntax."""
    limits = scope.context.limits
    # implementing an owner's amendment (no further amendment allowed): tests may be extended
    amending = not scope.context.amendment_allowed
    reason = protection_problem(path, kind, original, new, scope.evidence, amending)
    if reason is None and is_requirements_file(path):
        reason = requirements_problem(path, original, new)
    if reason is None and len(new.encode()) > limits.max_file_bytes:
        reason = f"the file would exceed {limits.max_file_bytes} bytes"
    if reason is None and path == scope.context.spec_path:
        reason = spec_problem(original or "", new)
    elif reason is None:
        reason = syntax_problem(path, new)
    return reason


def _review_amendment(
    draft: AmendmentDraft, repo: Path, context: GuardContext, staged: dict[str, str | None]
) -> str | None:
    for text in (draft.requirement, draft.change, draft.why):
        reason = content_problem(text, context.known_secrets)
        if reason:
            return reason
    current = _current(repo, context.spec_path, staged)
    if isinstance(current, _Unreadable) or current is None:
        return "the spec cannot be read, so no amendment can be appended"
    original = _current(repo, context.spec_path, {})
    new = append_amendment(current, draft, context.today)
    reason = spec_problem(original if isinstance(original, str) else current, new)
    if reason is None:
        staged[context.spec_path] = new
    return reason


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _current(repo: Path, path: str, staged: dict[str, str | None]) -> str | _Unreadable | None:
    if path in staged:
        return staged[path]
    target = repo / path
    if not target.exists():
        return None
    if not target.is_file():
        return _Unreadable("the path is not a regular file")
    data = target.read_bytes()
    if b"\x00" in data:
        return _Unreadable("the existing file is binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _Unreadable("the existing file is not UTF-8 text")


def write_staged(workspace: Path, staged: dict[str, str | None]) -> list[str]:
    """Write an accepted review's contents into ``workspace``; returns the changed paths."""
    changed = []
    for path, content in sorted(staged.items()):
        target = workspace / path
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        changed.append(path)
    return changed
