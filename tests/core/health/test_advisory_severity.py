"""Severity from OSV records: CVSS v3 base scores by the official formula, database labels."""

from __future__ import annotations

from typing import Any

import pytest

from specfleet.core.health.advisories import (
    cvss3_base_score,
    severity_for_score,
    severity_from_label,
    severity_of,
)

# Base scores as NVD publishes them for these vectors.
NVD_SCORES = [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:N/A:N", 5.3),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", 5.5),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
]


@pytest.mark.parametrize(("vector", "score"), NVD_SCORES)
def test_cvss3_base_score_matches_nvd(vector: str, score: float) -> None:
    """The computed base score equals NVD's for the same vector."""
    assert cvss3_base_score(vector) == score


def test_temporal_and_environmental_metrics_do_not_change_the_base_score() -> None:
    """Metrics after the eight base ones are allowed and ignored."""
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H"
    assert cvss3_base_score(vector) == 9.8


@pytest.mark.parametrize(
    "vector",
    [
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no version prefix
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # A missing
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # unknown value
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:Q/C:H/I:H/A:H",  # unknown scope
        "CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # a metric twice
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "AV:N/AC:L/Au:N/C:P/I:P/A:P",  # CVSS v2
        "",
    ],
)
def test_invalid_vectors_have_no_score(vector: str) -> None:
    """Anything but a complete v3.0/v3.1 vector gives None instead of raising."""
    assert cvss3_base_score(vector) is None


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (10.0, "critical"),
        (9.0, "critical"),
        (8.9, "high"),
        (7.0, "high"),
        (6.9, "medium"),
        (4.0, "medium"),
        (3.9, "low"),
        (0.1, "low"),
        (0.0, None),
    ],
)
def test_severity_for_score(score: float, severity: str | None) -> None:
    """The CVSS v3 qualitative scale, with 0.0 meaning no severity."""
    assert severity_for_score(score) == severity


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("CRITICAL", "critical"),
        ("HIGH", "high"),
        ("MODERATE", "medium"),
        ("Medium", "medium"),
        ("low", "low"),
        ("UNKNOWN", None),
        (5, None),
        (None, None),
    ],
)
def test_severity_from_label(label: object, severity: str | None) -> None:
    """GitHub's labels map to the scale (MODERATE is medium); anything else is unknown."""
    assert severity_from_label(label) == severity


V3_CRITICAL = {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
V3_MEDIUM = {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"}
V4 = {
    "type": "CVSS_V4",
    "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
}


@pytest.mark.parametrize(
    ("document", "affected", "expected"),
    [
        ({"severity": [V3_CRITICAL]}, [], ("critical", 9.8)),
        ({"severity": [V3_MEDIUM, V3_CRITICAL]}, [], ("critical", 9.8)),  # the highest wins
        ({"severity": [V4], "database_specific": {"severity": "HIGH"}}, [], ("high", None)),
        ({"severity": [V4]}, [], (None, None)),
        ({"database_specific": {"severity": "MODERATE"}}, [], ("medium", None)),
        # a computed score outranks a label
        (
            {"severity": [V3_MEDIUM], "database_specific": {"severity": "CRITICAL"}},
            [],
            ("medium", 6.1),
        ),
        # a malformed vector falls through to the label
        (
            {
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/garbage"}],
                "database_specific": {"severity": "LOW"},
            },
            [],
            ("low", None),
        ),
        # per-package severity (OSV 1.5+) counts too
        ({}, [{"severity": [V3_MEDIUM]}], ("medium", 6.1)),
        ({"severity": "not a list", "database_specific": "nor a mapping"}, [], (None, None)),
        ({}, [], (None, None)),
    ],
)
def test_severity_of_records(
    document: dict[str, Any], affected: list[dict[str, Any]], expected: tuple[Any, Any]
) -> None:
    """CVSS v3 vectors first, then database labels (CVSS v4 has no formula here), else None."""
    assert severity_of(document, affected) == expected
