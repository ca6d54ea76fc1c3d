"""Reading one OSV record: YAML scalars kept as written, shape checks, derived advisories."""

from __future__ import annotations

import json
from typing import Any

import pytest

from specfleet.core.health.advisories import Malformed, OsvRecord, load_document, parse_record

RECORD = """\
id: TEST-2024-1
modified: 2024-01-02T03:04:05.123456Z
published: 2024-01-01T00:00:00Z
aliases: [CVE-2024-0001]
details: |
  First paragraph of the details,
  still the first paragraph.

  A second paragraph.
affected:
- package: {ecosystem: PyPI, name: Demo_Package}
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: 1.10
    - fixed: 1.20
  - type: GIT
    repo: https://example.invalid/demo
    events:
    - introduced: "0"
    - fixed: 0123456789abcdef
  versions: [1.10, 1.11, 010]
- package: {ecosystem: npm, name: demo-package}
  versions: ["9.9.9"]
database_specific:
  severity: HIGH
  reviewed: true
"""


def record(text: str = RECORD) -> OsvRecord:
    document = load_document(text.encode(), json_format=False)
    parsed = parse_record(document)
    assert isinstance(parsed, OsvRecord), parsed
    return parsed


def test_yaml_scalars_stay_as_written() -> None:
    """Unquoted versions and timestamps stay text (1.10 is not 1.1, 010 is not 8)."""
    document = load_document(RECORD.encode(), json_format=False)
    assert isinstance(document, dict)
    assert document["modified"] == "2024-01-02T03:04:05.123456Z"
    assert document["affected"][0]["versions"] == ["1.10", "1.11", "010"]
    assert document["affected"][0]["ranges"][0]["events"] == [
        {"introduced": "1.10"},
        {"fixed": "1.20"},
    ]
    assert document["database_specific"]["reviewed"] is True
    json.dumps(document)  # the server sends it as it is


def test_record_derives_one_advisory_per_pypi_package() -> None:
    """Names are canonicalised, other ecosystems and GIT ranges are left out."""
    parsed = record()
    assert parsed.id == "TEST-2024-1"
    assert parsed.modified == "2024-01-02T03:04:05.123456Z"
    assert list(parsed.advisories) == ["demo-package"]
    advisory = parsed.advisories["demo-package"]  # type: ignore[index]
    assert advisory.aliases == ("CVE-2024-0001",)
    assert advisory.fixed_versions == ("1.20",)
    assert len(advisory.ranges) == 1
    assert advisory.versions == frozenset({"1.10", "1.11", "010"})
    assert advisory.severity == "high"
    assert advisory.summary == "First paragraph of the details, still the first paragraph."
    assert advisory.details.startswith("First paragraph")
    assert advisory.affects("1.15") is True
    assert advisory.affects("1.20") is False
    assert advisory.affects("9.9.9") is False


def test_summary_prefers_the_records_own_and_shortens_long_details() -> None:
    """An OSV summary is used as is; otherwise the details' first paragraph, cut to fit."""
    own = record(RECORD.replace("aliases:", "summary: Short and sweet\naliases:"))
    assert own.advisories["demo-package"].summary == "Short and sweet"  # type: ignore[index]
    long_details = "word " * 100
    cut = record(RECORD.replace("details: |", f"details: {long_details}\nxdetails: |"))
    summary = cut.advisories["demo-package"].summary  # type: ignore[index]
    assert summary.endswith("…") and len(summary) <= 160


def test_withdrawn_is_read() -> None:
    """A record with a withdrawn timestamp yields a withdrawn advisory."""
    parsed = record(RECORD.replace("aliases:", "withdrawn: 2024-02-01T00:00:00Z\naliases:"))
    advisory = parsed.advisories["demo-package"]  # type: ignore[index]
    assert advisory.withdrawn
    assert advisory.affects("1.15") is False


@pytest.mark.parametrize(
    ("data", "json_format", "reason"),
    [
        (b"id: [unclosed\n", False, "invalid YAML"),
        (b'{"id": ', True, "invalid JSON"),
        (b"\xff\xfe\x00garbage", False, "not UTF-8"),
        # a small file whose aliases expand to a huge tree
        (
            b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            b"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
            b"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
            False,
            "more than",
        ),
    ],
)
def test_unreadable_documents_are_values(data: bytes, json_format: bool, reason: str) -> None:
    """Bad bytes, bad syntax and alias bombs come back as Malformed with a reason."""
    outcome = load_document(data, json_format=json_format)
    assert isinstance(outcome, Malformed)
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (None, "found an empty file"),
        (["id", "x"], "found a list"),
        ({"details": "no id"}, "has no 'id'"),
        ({"id": "  "}, "has no 'id'"),
        ({"id": "X-1", "affected": {"package": "x"}}, "'affected' must be a list"),
        ({"id": "X-1", "affected": ["x"]}, "affected[0]: expected a mapping"),
        ({"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI"}}]}, "'package'"),
        ({"id": "X-1", "aliases": "CVE-1"}, "'aliases'"),
        ({"id": "X-1", "details": ["x"]}, "'details' must be text"),
        (
            {"id": "X-1", "affected": [{"package": {"name": "x"}, "versions": [["1.0"]]}]},
            "'versions'",
        ),
        (
            {"id": "X-1", "affected": [{"package": {"name": "x"}, "ranges": [{"type": 1}]}]},
            "ranges[0]",
        ),
        (
            {
                "id": "X-1",
                "affected": [
                    {
                        "package": {"name": "x", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": None}]}],
                    }
                ],
            },
            "events[0]: expected exactly one of",
        ),
        (
            {
                "id": "X-1",
                "affected": [
                    {
                        "package": {"name": "x", "ecosystem": "PyPI"},
                        "ranges": [{"type": "ECOSYSTEM", "events": [{"patched": "1.0"}]}],
                    }
                ],
            },
            "events[0]: expected exactly one of",
        ),
    ],
)
def test_malformed_records_are_values(document: Any, reason: str) -> None:
    """Records breaking the schema parts used here come back as Malformed, naming the spot."""
    outcome = parse_record(document)
    assert isinstance(outcome, Malformed)
    assert reason in outcome.reason


def test_git_range_content_is_not_checked() -> None:
    """GIT ranges may hold anything in their events: they are never read for PyPI."""
    parsed = parse_record(
        {
            "id": "X-1",
            "affected": [
                {
                    "package": {"name": "x", "ecosystem": "PyPI"},
                    "ranges": [{"type": "GIT", "events": [{"introduced": "0", "odd": 1}]}],
                }
            ],
        }
    )
    assert isinstance(parsed, OsvRecord)
    assert parsed.advisories["x"].ranges == ()  # type: ignore[index]
