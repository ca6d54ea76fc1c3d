"""Protected evidence: the one place that decides which files a plan may not touch.

The verification gate judges a proposal by running the product's tests on its fixtures; a plan
that could edit those tests, their configuration or the interpreter's start-up would make the
evidence lie ("tests passed" because they were skipped, deselected or rewritten). So:

- existing test files (anything under a ``tests``/``test`` folder, ``test_*.py``, ``*_test.py``,
  and the files the spec's requirements name) may not be modified or deleted; a plan may
  *add* new test files (an amendment's new requirement needs its tests);
- test configuration: ``conftest.py`` at any depth (new ones too: a new conftest's hooks can
  empty the collected items), ``pytest.ini``, ``.pytest.ini``, ``tox.ini``, and the pytest
  sections of ``setup.cfg`` (``[tool:pytest]``) and ``pyproject.toml`` (``[tool.pytest...]``);
- the fixtures the spec names (both sides of verification are built from them);
- CI configuration (it runs with the project's CI credentials);
- interpreter start-up files (``sitecustomize.py``, ``usercustomize.py``, ``*.pth``): they
  run before any test and could patch pytest itself.

:func:`protection_problem` judges one edit; :func:`protected_files` lists what is protected in a
repository (``specfleet agent check-edits`` prints it). Both are pure apart from reading the
repository's spec and file list.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

# CI systems run these with the project's credentials; a model must never touch them.
CI_PATTERNS = (
    ".gitlab-ci.yml",
    ".gitlab-ci.yaml",
    ".gitlab/*",
    ".github/*",
    ".circleci/*",
    ".buildkite/*",
    ".woodpecker.yml",
    ".woodpecker/*",
    ".drone.yml",
    ".travis.yml",
    "jenkinsfile",
    "azure-pipelines.yml",
    "bitbucket-pipelines.yml",
    "buildspec.yml",
    ".pre-commit-config.yaml",
)
STARTUP_FILES = frozenset({"sitecustomize.py", "usercustomize.py"})
TEST_CONFIG_FILES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini"})
TEST_FOLDERS = frozenset({"tests", "test"})

STARTUP_REASON = "interpreter start-up files (sitecustomize, usercustomize, .pth) are never written"
CI_REASON = "CI configuration is never edited"


@dataclass(frozen=True)
class Evidence:
    """What the spec names as evidence: its fixtures and the test files its requirements name."""

    fixtures: frozenset[str] = frozenset()
    requirement_tests: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProtectedFile:
    path: str
    why: str


def ci_configuration(path: str) -> bool:
    lowered = path.lower()
    return any(glob_match(lowered, pattern) for pattern in CI_PATTERNS)


def glob_match(path: str, pattern: str) -> bool:
    """fnmatch, with ``dir/*`` and ``dir/**`` meaning everything below ``dir``."""
    if pattern.endswith("/**") or pattern.endswith("/*"):
        prefix = pattern.rsplit("/", 1)[0]
        return path == prefix or path.startswith(prefix + "/")
    return fnmatch.fnmatchcase(path, pattern)


def is_test_file(path: str) -> bool:
    """A file the test run collects or reads: under a tests folder, or named like a test."""
    pure = PurePosixPath(path)
    name = pure.name.lower()
    if any(part.lower() in TEST_FOLDERS for part in pure.parts[:-1]):
        return True
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def path_class(path: str, evidence: Evidence) -> str | None:
    """Why ``path`` as a whole is protected whatever the edit (None: it is not)."""
    name = PurePosixPath(path).name
    lowered = name.lower()
    if lowered in STARTUP_FILES or lowered.endswith(".pth"):
        return STARTUP_REASON
    if ci_configuration(path):
        return CI_REASON
    if lowered in TEST_CONFIG_FILES:
        return f"test configuration ({name}) is protected: it decides which tests run"
    if path in evidence.fixtures:
        return "this fixture is named by the spec: verification builds both sides from it"
    return None


def protection_problem(
    path: str,
    kind: str,
    current: str | None,
    new: str | None,
    evidence: Evidence,
    amending: bool = False,
) -> str | None:
    """Why this edit touches protected evidence (None: it does not).

    ``current`` is the file's text before the edit (None: it does not exist), ``new`` after
    it (None: deleted). ``amending``: the plan implements an owner's amendment, which may
    change what an existing test expects (a new column in an exact schema), so an existing
    test file may then be *extended*, never weakened (see :func:`weakened_tests`).
    """
    whole = path_class(path, evidence)
    if whole is not None:
        return whole
    if path in evidence.requirement_tests and kind == "delete":
        return "this file holds tests the spec's requirements name"
    if current is not None and (is_test_file(path) or path in evidence.requirement_tests):
        if amending and kind != "delete" and new is not None:
            return weakened_tests(current, new)
        verb = "deleted" if kind == "delete" else "modified"
        return (
            f"existing tests are protected and may not be {verb}; "
            "add a new test file for a new requirement instead"
        )
    lowered = PurePosixPath(path).name.lower()
    if lowered == "setup.cfg" and _setup_cfg_pytest(current) != _setup_cfg_pytest(new):
        return "the [tool:pytest] section of setup.cfg is protected test configuration"
    if lowered == "pyproject.toml" and _pyproject_pytest(current) != _pyproject_pytest(new):
        return "the [tool.pytest] section of pyproject.toml is protected test configuration"
    return None


SKIP_CALLS = ("skip", "skipif", "xfail", "importorskip")


def weakened_tests(old: str, new: str) -> str | None:
    """Why ``new`` proves less than ``old`` (None: every test is kept with its assertions and
    nothing more is skipped). Parsed, never run; unparsable text counts as weakened."""
    try:
        before, after = ast.parse(old), ast.parse(new)
    except SyntaxError:
        return "the existing test file would no longer parse"
    old_tests, new_tests = _test_functions(before), _test_functions(after)
    gone = sorted(set(old_tests) - set(new_tests))
    if gone:
        return f"existing tests may not be removed or renamed: {', '.join(gone[:5])}"
    fewer = sorted(name for name, asserts in old_tests.items() if new_tests[name] < asserts)
    if fewer:
        return f"existing tests may not lose assertions: {', '.join(fewer[:5])}"
    if _skip_marks(after) > _skip_marks(before):
        return "existing tests may not be skipped or marked xfail"
    return None


def _test_functions(tree: Any) -> dict[str, int]:
    """Each test function (module level or in a class) and how many assert statements it has."""
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            asserts = sum(isinstance(child, ast.Assert) for child in ast.walk(node))
            trivial = sum(
                isinstance(child, ast.Assert)
                and isinstance(child.test, ast.Constant)
                and bool(child.test.value)
                for child in ast.walk(node)
            )
            found[node.name] = asserts - trivial
    return found


def _skip_marks(tree: Any) -> int:
    """Occurrences of pytest's skip/xfail machinery (marks and calls)."""
    return sum(
        isinstance(node, ast.Attribute) and node.attr in SKIP_CALLS for node in ast.walk(tree)
    )


def _setup_cfg_pytest(text: str | None) -> Any:
    if not text:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return ("unparsable", text)  # any change to an unreadable file counts as a change
    return dict(parser["tool:pytest"]) if parser.has_section("tool:pytest") else None


def _pyproject_pytest(text: str | None) -> Any:
    if not text:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return ("unparsable", text)
    tool = data.get("tool")
    return tool.get("pytest") if isinstance(tool, dict) else None


def evidence_from_spec(spec: Any) -> Evidence:
    """The fixtures and requirement test files a (valid) spec names."""
    if spec is None:
        return Evidence()
    fixtures = frozenset(str(item.fixture) for item in spec.inputs)
    tests = frozenset(
        test.split("::", 1)[0] for requirement in spec.requirements for test in requirement.tests
    )
    return Evidence(fixtures, tests)


def protected_files(paths: Iterable[str], evidence: Evidence) -> list[ProtectedFile]:
    """Every file of the repository (``paths``) a plan may not modify, with the reason."""
    found = []
    for path in sorted(paths):
        why = path_class(path, evidence)
        if why is None and (is_test_file(path) or path in evidence.requirement_tests):
            why = "existing test file"
        elif why is None and PurePosixPath(path).name.lower() in ("setup.cfg", "pyproject.toml"):
            why = "its pytest section is test configuration"
        if why is not None:
            found.append(ProtectedFile(path, why))
    return found
