"""Choosing target versions: lowest fix, policy floors, currency, and what blocks a change."""

from __future__ import annotations

import datetime as dt

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from specfleet.agent.remediators.dependencies import Blocked, Upgrade, decide_pin
from specfleet.core.health.advisories.interface import Advisory, RangeEvent
from specfleet.core.health.pins import Pin
from specfleet.core.health.releases import Release, ReleaseFacts, UnknownFacts
from specfleet.core.health.report import PinHealth
from specfleet.core.health.upgrades import MinimumVersion, UpgradePolicy

TODAY = dt.date(2026, 11, 22)


def when(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def facts(name: str, *releases: Release, latest: str | None = None) -> ReleaseFacts:
    ordered = tuple(sorted(releases, key=lambda release: release.parsed))  # type: ignore[arg-type, return-value]
    return ReleaseFacts(
        canonicalize_name(name), latest or ordered[-1].version, ordered, when("2026-11-22")
    )


def release(version: str, day: str = "2024-01-01", **extra: object) -> Release:
    return Release(version, when(day), **extra)  # type: ignore[arg-type]


def pin_health(
    name: str, version: str, advisories: tuple[Advisory, ...] = (), latest: str | None = None
) -> PinHealth:
    pin = Pin(canonicalize_name(name), SpecifierSet(f"=={version}"), "requirements.txt", 3)
    return PinHealth(pin, version, latest, None, None, False, advisories)


PYARROW_ADVISORY = Advisory(
    id="PYSEC-2023-238",
    package=canonicalize_name("pyarrow"),
    aliases=("CVE-2023-47248",),
    fixed_versions=("14.0.1",),
    ranges=((RangeEvent(introduced="0.14.0"), RangeEvent(fixed="14.0.1")),),
)
PYARROW = facts(
    "pyarrow",
    release("13.0.0"),
    release("14.0.0", "2023-11-01"),
    release("14.0.1", "2023-11-08"),
    release("14.0.2", "2023-12-18"),
    release("15.0.0", "2024-01-21"),
)


def test_vulnerable_pin_moves_to_the_lowest_fixing_release() -> None:
    """pyarrow 14.0.0 -> 14.0.1, citing the advisory, not to the latest 15.0.0."""
    decision = decide_pin(
        pin_health("pyarrow", "14.0.0", (PYARROW_ADVISORY,)),
        PYARROW,
        UpgradePolicy(),
        "3.11",
        TODAY,
    )
    assert isinstance(decision, Upgrade)
    assert (decision.current, decision.target) == ("14.0.0", "14.0.1")
    assert [reason.id for reason in decision.reasons] == ["PYSEC-2023-238"]
    assert "CVE-2023-47248" in decision.reasons[0].detail
    assert not decision.crosses_major


def test_yanked_and_too_young_releases_are_skipped() -> None:
    """A yanked fix and a fix younger than the minimum release age are passed over."""
    pyarrow = facts(
        "pyarrow",
        release("14.0.0"),
        release("14.0.1", yanked=True, yanked_reason="broken wheel"),
        release("14.0.2", "2026-11-20"),
        release("14.0.3", "2026-10-01"),
    )
    policy = UpgradePolicy(min_release_age_days=7)
    decision = decide_pin(
        pin_health("pyarrow", "14.0.0", (PYARROW_ADVISORY,)), pyarrow, policy, "3.11", TODAY
    )
    assert isinstance(decision, Upgrade) and decision.target == "14.0.3"


def test_requires_python_is_respected() -> None:
    """A release that does not support the product's runtime is never chosen."""
    pyarrow = facts(
        "pyarrow", release("14.0.0"), release("14.0.1", requires_python=">=3.12"), release("14.0.2")
    )
    decision = decide_pin(
        pin_health("pyarrow", "14.0.0", (PYARROW_ADVISORY,)),
        pyarrow,
        UpgradePolicy(),
        "3.11",
        TODAY,
    )
    assert isinstance(decision, Upgrade) and decision.target == "14.0.2"


def test_a_fix_across_a_major_version_is_blocked_unless_allowed() -> None:
    """duckdb 0.9.2's fix is 0.10.0: crossing 0.9 -> 0.10 needs the policy's permission."""
    advisory = Advisory(
        id="PYSEC-2024-25",
        package=canonicalize_name("duckdb"),
        fixed_versions=("0.9.3.dev6",),
        ranges=((RangeEvent(introduced="0"), RangeEvent(fixed="0.9.3.dev6")),),
    )
    duckdb = facts("duckdb", release("0.9.2"), release("0.10.0"), release("1.1.3"))
    health = pin_health("duckdb", "0.9.2", (advisory,))
    blocked = decide_pin(health, duckdb, UpgradePolicy(), "3.11", TODAY)
    assert isinstance(blocked, Blocked)
    assert "0.10.0 would do, but it is a new major version (0.9.x → 0.10.x)" in blocked.why
    allowed = decide_pin(health, duckdb, UpgradePolicy(allow_major=True), "3.11", TODAY)
    assert isinstance(allowed, Upgrade) and allowed.target == "0.10.0" and allowed.crosses_major


def test_policy_minimum_moves_to_the_lowest_admitted_release() -> None:
    """pandas >= 2.2 (a rule) moves 1.5.3 to 2.2.0, citing the rule id."""
    pandas = facts("pandas", release("1.5.3"), release("2.0.0"), release("2.2.0"), release("2.2.3"))
    policy = UpgradePolicy(
        allow_major=True,
        minimums=(
            MinimumVersion(canonicalize_name("pandas"), SpecifierSet(">=2.2"), "ORG-PY-004"),
        ),
    )
    decision = decide_pin(pin_health("pandas", "1.5.3"), pandas, policy, "3.11", TODAY)
    assert isinstance(decision, Upgrade) and decision.target == "2.2.0"
    assert decision.reasons[0].kind == "policy" and decision.reasons[0].id == "ORG-PY-004"


def test_currency_policy_moves_to_the_latest_allowed() -> None:
    """A currency rule takes the latest release within the major version."""
    requests = facts(
        "requests", release("2.28.2"), release("2.31.0"), release("2.32.3"), release("3.0.0")
    )
    policy = UpgradePolicy(currency={"*": "ORG-DEP-002"})
    decision = decide_pin(
        pin_health("requests", "2.28.2", latest="3.0.0"), requests, policy, "3.11", TODAY
    )
    assert isinstance(decision, Upgrade) and decision.target == "2.32.3"


def test_healthy_pin_needs_nothing() -> None:
    """No advisory and no rule: no decision at all."""
    assert (
        decide_pin(pin_health("pyarrow", "14.0.1"), PYARROW, UpgradePolicy(), "3.11", TODAY) is None
    )


def test_unknown_facts_block_with_the_reason() -> None:
    """Without release facts specfleet cannot choose, and says why."""
    unknown = UnknownFacts(canonicalize_name("pyarrow"), "index unreachable (ConnectTimeout)")
    decision = decide_pin(
        pin_health("pyarrow", "14.0.0", (PYARROW_ADVISORY,)),
        unknown,
        UpgradePolicy(),
        "3.11",
        TODAY,
    )
    assert isinstance(decision, Blocked) and "index unreachable" in decision.why


def test_fixed_versions_alone_are_enough_when_ranges_are_unknown() -> None:
    """pip-audit reports only fix versions; the lowest release at or above the fix is chosen."""
    advisory = Advisory(
        id="PYSEC-2023-74", package=canonicalize_name("requests"), fixed_versions=("2.31.0",)
    )
    requests = facts(
        "requests", release("2.28.2"), release("2.30.0"), release("2.31.0"), release("2.32.3")
    )
    decision = decide_pin(
        pin_health("requests", "2.28.2", (advisory,)), requests, UpgradePolicy(), "3.11", TODAY
    )
    assert isinstance(decision, Upgrade) and decision.target == "2.31.0"
