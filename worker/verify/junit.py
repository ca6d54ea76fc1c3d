"""Reading the JUnit XML report a test run wrote (``pytest --junitxml``) into a
:class:`TestSummary`, bounded in size and cases; a report with a DOCTYPE (entity tricks) is
refused before it is parsed.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from xml.parsers import expat

from specfleet.core.errors import VerificationError
from specfleet.worker.verify.bounded_run import human_size
from specfleet.worker.verify.model import TestCase, TestOutcome, TestSummary

MAX_JUNIT_BYTES = 50 * 1024 * 1024
MAX_CASES = 5000
MAX_MESSAGE_LINES = 20
MAX_MESSAGE_CHARS = 2000


def parse_junit(path: Path, root: Path | None = None) -> TestSummary | None:
    """The test results a JUnit XML report holds; None when there is no report.

    ``root``, the checkout the tests ran in, lets test names be given as pytest prints them.

    Counts come from the ``<testcase>`` elements (a suite's own totals only when it lists
    none). Raises :class:`VerificationError` for a report that is too big, is not XML, or
    declares a DOCTYPE: entities could expand without bound or read local files.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        raise VerificationError(f"JUnit report {path.name} cannot be read: {error}") from error
    if size > MAX_JUNIT_BYTES:
        raise VerificationError(f"JUnit report {path.name} refused: {human_size(size)} is too big")
    data = path.read_bytes()
    _refuse_doctype(data, path.name)
    try:
        document = ElementTree.fromstring(data)  # noqa: S314 - no DOCTYPE: checked above
    except ElementTree.ParseError as error:
        raise VerificationError(f"JUnit report {path.name} is not XML: {error}") from error
    cases = [_case(element, root) for element in document.iter("testcase")]
    if not cases:
        return _suite_totals(document)
    counts = {outcome: 0 for outcome in ("passed", "failed", "skipped", "error")}
    for case in cases:
        counts[case.outcome] += 1
    if len(cases) > MAX_CASES:  # keep every failure; passing cases are what is dropped
        interesting = [case for case in cases if case.outcome != "passed"][:MAX_CASES]
        passing = [case for case in cases if case.outcome == "passed"]
        cases = interesting + passing[: MAX_CASES - len(interesting)]
    return TestSummary(
        total=sum(counts.values()),
        passed=counts["passed"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        errors=counts["error"],
        cases=tuple(cases),
    )


def _refuse_doctype(data: bytes, name: str) -> None:
    """A first pass with expat that stops at a DOCTYPE, whatever the report's encoding."""

    def refuse(*_: object) -> None:
        raise VerificationError(f"JUnit report {name} refused: it declares a DOCTYPE")

    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise VerificationError(f"JUnit report {name} is not XML: {error}") from error


_OUTCOMES: tuple[tuple[str, TestOutcome], ...] = (
    ("failure", "failed"),
    ("error", "error"),
    ("skipped", "skipped"),
)


def _case(element: ElementTree.Element, root: Path | None) -> TestCase:
    name = junit_test_name(
        element.get("classname", ""), element.get("name", ""), element.get("file"), root
    )
    for child, outcome in _OUTCOMES:
        found = element.find(child)
        if found is not None:
            return TestCase(name=name, outcome=outcome, message=_message(found))
    return TestCase(name=name, outcome="passed")


def junit_test_name(
    classname: str, name: str, file: str | None = None, root: Path | None = None
) -> str:
    """A test's name as pytest prints it (``tests/test_x.py::TestY::test_z``) when the report
    or the checkout tells which part of the dotted ``classname`` is the module's file;
    ``classname::name`` otherwise.
    """
    parts = classname.split(".") if classname else []
    if file:
        # pytest's xunit1 names the file: file="tests/test_x.py" classname="tests.test_x.TestY"
        module = file.removesuffix(".py").replace("/", ".")
        inner = classname.removeprefix(module).lstrip(".")
        return "::".join([file, *(inner.split(".") if inner else []), name])
    if root is not None:
        # xunit2 (pytest's default) does not: the longest dotted prefix that is a file is it
        for end in range(len(parts), 0, -1):
            path = "/".join(parts[:end]) + ".py"
            if (root / path).is_file():
                return "::".join([path, *parts[end:], name])
    return f"{classname}::{name}" if classname else name


def _message(element: ElementTree.Element) -> str:
    parts = [element.get("message", "").strip(), (element.text or "").strip()]
    text = "\n".join(part for part in parts if part)
    lines = text.splitlines()
    if len(lines) > MAX_MESSAGE_LINES:
        text = "\n".join(lines[:MAX_MESSAGE_LINES]) + "\n…"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _suite_totals(root: ElementTree.Element) -> TestSummary:
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))

    def total(attribute: str) -> int:
        count = 0
        for suite in suites:
            with contextlib.suppress(ValueError):
                count += int(suite.get(attribute, "0"))
        return count

    tests, failed, errors = total("tests"), total("failures"), total("errors")
    skipped = total("skipped") or total("skips")
    passed = max(tests - failed - errors - skipped, 0)
    return TestSummary(total=tests, passed=passed, failed=failed, skipped=skipped, errors=errors)
