"""OSV matching for PyPI as pure functions: ranges, versions lists, fixes, withdrawn, unknowns."""

from __future__ import annotations

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from specfleet.core.health.advisories import (
    Advisory,
    RangeEvent,
    advisory_affects,
    first_fix_after,
    fixed_versions,
    is_affected,
    range_includes,
)


def events(*specs: str) -> tuple[RangeEvent, ...]:
    """``events("introduced:0", "fixed:1.0")`` -> the RangeEvents of one range."""
    made = []
    for spec in specs:
        kind, _, version = spec.partition(":")
        made.append(RangeEvent(**{kind: version}))
    return tuple(made)


RANGE_CASES = [
    # (events, version, expected)
    (("introduced:0", "fixed:1.0"), "0.5", True),
    (("introduced:0", "fixed:1.0"), "0.0.1", True),
    (("introduced:0", "fixed:1.0"), "1.0rc1", True),  # a pre-release of the fix is before it
    (("introduced:0", "fixed:1.0"), "1.0", False),
    (("introduced:0", "fixed:1.0"), "1.0.post1", False),
    (("introduced:1.0", "fixed:2.0"), "0.9", False),
    (("introduced:1.0", "fixed:2.0"), "1.0", True),
    (("introduced:1.0", "fixed:2.0"), "1.99", True),
    (("introduced:1.0", "fixed:2.0"), "2.0", False),
    (("introduced:1.0", "last_affected:1.4.2"), "1.4.2", True),
    (("introduced:1.0", "last_affected:1.4.2"), "1.4.2.post1", False),
    (("introduced:1.0", "last_affected:1.4.2"), "1.4.3", False),
    (("introduced:1.0", "last_affected:1.4.2"), "0.9", False),
    (("introduced:0",), "99.0", True),
    # duckdb PYSEC-2024-25: fixed in a development release
    (("introduced:0", "fixed:0.9.3.dev6"), "0.9.2", True),
    (("introduced:0", "fixed:0.9.3.dev6"), "0.9.3.dev5", True),
    (("introduced:0", "fixed:0.9.3.dev6"), "0.9.3.dev6", False),
    (("introduced:0", "fixed:0.9.3.dev6"), "0.9.3", False),
    (("introduced:0", "fixed:0.9.3.dev6"), "0.10.0", False),
    # two intervals in one range
    (("introduced:1.0", "fixed:1.5", "introduced:2.0", "fixed:2.5"), "1.7", False),
    (("introduced:1.0", "fixed:1.5", "introduced:2.0", "fixed:2.5"), "2.1", True),
    (("introduced:1.0", "fixed:1.5", "introduced:2.0", "fixed:2.5"), "3.0", False),
    # events are sorted by version before the walk, whatever their order in the file
    (("fixed:1.5", "introduced:1.0"), "1.2", True),
    (("fixed:2.5", "introduced:2.0", "fixed:1.5", "introduced:1.0"), "2.2", True),
    # a regression: fixed in 1.0, reintroduced in 1.2 and never fixed
    (("introduced:0", "fixed:1.0", "introduced:1.2"), "1.1", False),
    (("introduced:0", "fixed:1.0", "introduced:1.2"), "1.3", True),
    # limits bound the range from above; "*" is no bound
    (("introduced:0", "limit:2.0"), "1.9", True),
    (("introduced:0", "limit:2.0"), "2.0", False),
    (("introduced:0", "limit:*"), "99", True),
    # PEP 440 ordering, not text ordering
    (("introduced:0", "fixed:1.10"), "1.9", True),
    (("introduced:0", "fixed:1!0.1"), "2.0", True),  # an epoch outranks any release
    # invalid OSV (no introduced) is read as introduced "0", never as "nothing affected"
    (("fixed:1.0",), "0.5", True),
    (("fixed:1.0",), "1.0", False),
    # unparsable events make the range undecidable
    (("introduced:0", "fixed:2019-09-12"), "1.0", None),
    (("introduced:not-a-version",), "1.0", None),
]


@pytest.mark.parametrize(("spec", "version", "expected"), RANGE_CASES)
def test_range_includes(spec: tuple[str, ...], version: str, expected: bool | None) -> None:
    """One ECOSYSTEM range follows the OSV walk with PEP 440 order; unparsable -> None."""
    assert range_includes(Version(version), events(*spec)) is expected


@pytest.mark.parametrize(
    ("ranges", "versions", "version", "expected"),
    [
        # the explicit list suffices even when the ranges disagree
        ([("introduced:0", "fixed:2.0")], ["3.0"], "3.0", True),
        ([], ["1.0.0", "1.1.0"], "1.1.0", True),
        ([], ["1.0.0", "1.1.0"], "1.2.0", False),
        ([], ["1.0"], "1.0.0", True),  # PEP 440 equality
        ([], ["0.1-bulbasaur"], "0.1-bulbasaur", True),  # unparsable, compared as text
        # any range suffices
        ([("introduced:1.0", "fixed:1.2.5"), ("introduced:2.0", "fixed:2.0.3")], [], "2.0.1", True),
        ([("introduced:1.0", "fixed:1.2.5"), ("introduced:2.0", "fixed:2.0.3")], [], "1.3", False),
        # an undecidable range does not hide another range's "yes" ...
        ([("introduced:0", "fixed:bad!"), ("introduced:0", "fixed:2.0")], [], "1.0", True),
        # ... but without a "yes" the answer is "cannot tell"
        ([("introduced:0", "fixed:bad!"), ("introduced:5.0",)], [], "1.0", None),
        ([("introduced:0", "fixed:2019-09-12")], ["0.1"], "0.1", True),
        # a version PEP 440 cannot parse: only the list can decide
        ([("introduced:0", "fixed:2.0")], [], "banana", None),
        ([], ["1.0"], "banana", False),
    ],
)
def test_is_affected(
    ranges: list[tuple[str, ...]], versions: list[str], version: str, expected: bool | None
) -> None:
    """The versions list or any range makes a version affected; undecidable is None."""
    assert is_affected(version, [events(*spec) for spec in ranges], versions) is expected


def advisory(**fields: object) -> Advisory:
    return Advisory(id="TEST-1", package=canonicalize_name("demo"), **fields)  # type: ignore[arg-type]


def test_withdrawn_advisories_never_match() -> None:
    """A withdrawn advisory affects nothing, even a version its ranges and list include."""
    withdrawn = advisory(
        ranges=(events("introduced:0"),), versions=frozenset({"1.0"}), withdrawn=True
    )
    assert advisory_affects(withdrawn, "1.0") is False
    assert withdrawn.affects("2.0") is False


def test_advisory_without_ranges_cannot_tell() -> None:
    """pip-audit's advisories know their audited pin is affected and nothing about others."""
    reported = advisory(known_affected=frozenset({"2.28.2"}), fixed_versions=("2.31.0",))
    assert reported.affects("2.28.2") is True
    assert reported.affects("2.28.02") is True  # the same version, spelled differently
    assert reported.affects("2.20.0") is None
    assert reported.affects("2.31.0") is None
    assert advisory().affects("1.0") is None


def test_affects_delegates_to_osv_matching() -> None:
    """Advisory.affects applies ranges and the versions list together."""
    adv = advisory(
        ranges=(events("introduced:0.14.0", "fixed:14.0.1"),), versions=frozenset({"0.13.5"})
    )
    assert [adv.affects(v) for v in ("0.13.0", "0.13.5", "0.14.0", "14.0.0", "14.0.1")] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_fixed_versions_are_distinct_and_in_pep440_order() -> None:
    """Every fixed event once, ordered by PEP 440 (1.10 after 1.9); unparsable ones last."""
    ranges = [
        events("introduced:0", "fixed:2.0.3", "introduced:1.10.0", "fixed:1.10.1"),
        events("introduced:0", "fixed:1.2.5", "fixed:0.9.3.dev6"),
        events("introduced:0", "fixed:2019-09-12", "fixed:1.2.5", "last_affected:3.0"),
    ]
    assert fixed_versions(ranges) == (
        "0.9.3.dev6",
        "1.2.5",
        "1.10.1",
        "2.0.3",
        "2019-09-12",
    )
    assert fixed_versions([]) == ()


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.1", "1.2.5"),
        ("1.2.4", "1.2.5"),
        ("2.0.0", "2.0.3"),
        ("2.0.3", None),
        ("0.9.2", "0.9.3.dev6"),
        ("banana", None),
    ],
)
def test_first_fix_after(version: str, expected: str | None) -> None:
    """The upgrade that clears a version is the lowest fixed version above it."""
    fixed = ("0.9.3.dev6", "1.2.5", "2.0.3", "2019-09-12")
    assert first_fix_after(fixed, version) == expected
    assert advisory(fixed_versions=fixed).first_fix_after(version) == expected
