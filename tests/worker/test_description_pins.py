"""The merge request lists every pin that changed, direct or transitive, and the Python
target the change was resolved for."""

from __future__ import annotations

from specfleet.worker.pipeline.description import render_description
from tests.worker.test_pipeline_decisions import facts


def test_every_changed_pin_and_the_python_target_are_in_the_description() -> None:
    text = render_description(
        facts(
            pin_changes=(
                ("requests", "2.28.2", "2.31.0", True, "requirements.txt"),
                ("urllib3", "1.26.15", "1.26.18", False, "requirements.txt"),
                ("backports-zoneinfo", "", "0.2.1", False, "requirements.txt"),
            ),
            python_target="python3.8",
        )
    )
    section = text.split("## Every pin that changed")[1]
    assert "`python3.8`" in section
    assert "| urllib3 | 1.26.15 | 1.26.18 | transitive | requirements.txt |" in section
    assert "| requests | 2.28.2 | 2.31.0 | direct |" in section
    assert "| backports-zoneinfo | new | 0.2.1 | transitive |" in section


def test_without_pin_changes_the_section_is_left_out() -> None:
    assert "Every pin that changed" not in render_description(facts())
