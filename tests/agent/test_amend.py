"""Drafting an owner's amendment into the spec: conflicts are found before any code is written.

The rules (agent/amend.py): an amendment may add; it may change or remove an earlier clause
only when the request names the clause and says it changes; a model's own conflict comes back
naming the clauses; what passes is written into the spec text with its formatting kept.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from specfleet.agent.amend import (
    DRAFT_JSON_SCHEMA,
    AmendmentAsk,
    CheckedDraft,
    Conflict,
    DraftInvalid,
    SpecDraft,
    check_draft,
    explicitly_changes,
    parse_draft,
)
from specfleet.agent.amend_text import amend_spec_text
from specfleet.core.errors import InputError
from specfleet.core.spec import check_spec_bytes, load_spec

ORDERS = Path(__file__).resolve().parents[2] / "examples" / "orders" / "dataproduct.yaml"
TODAY = dt.date(2026, 11, 23)
LINES = AmendmentAsk(
    "I want to see the number of lines in each order.", "Warehouse picks per order line."
)


def line_count_draft(**overrides: Any) -> dict[str, Any]:
    draft: dict[str, Any] = {
        "summary": "Add line_count.",
        "conflict": None,
        "amendment": {
            "requirement": LINES.requirement,
            "change": "Added line_count, the number of lines of the order.",
            "why": "Warehouse picking is planned per order line, not per item.",
        },
        "requirements": [
            {
                "id": "R9",
                "text": "THE SYSTEM SHALL report line_count as the number of the order's lines.",
                "tests": ["tests/test_orders.py::test_line_count_counts_lines"],
            }
        ],
        "columns": [
            {
                "output": "orders",
                "name": "line_count",
                "type": "integer",
                "required": True,
                "description": "Number of lines of the order.",
                "why": "Warehouse picking is planned per order line.",
                "tolerance": None,
            }
        ],
        "removes": [],
    }
    draft.update(overrides)
    return draft


@pytest.fixture(scope="module")
def spec_text() -> str:
    return ORDERS.read_text(encoding="utf-8")


def judge(spec_text: str, draft: dict[str, Any], ask: AmendmentAsk = LINES) -> Any:
    spec = load_spec(ORDERS)
    return check_draft(spec, ask, SpecDraft.model_validate(draft))


def test_an_additive_draft_is_written_as_a_small_spec_diff(spec_text: str) -> None:
    """New column, new requirement, amendment A5 naming R9; nothing earlier moves."""
    checked = judge(spec_text, line_count_draft())
    assert isinstance(checked, CheckedDraft)
    assert checked.amendment_id == "A5"
    assert checked.new_columns == (("orders", "line_count"),)
    assert checked.requirement_ids == ("R9",)
    assert not checked.changes_earlier_clauses and checked.data_columns == ()
    text = amend_spec_text(spec_text, checked, LINES, TODAY)
    amended = check_spec_bytes(text.encode(), "dataproduct.yaml").spec
    assert amended is not None
    assert amended.output("orders").columns[-1].name == "line_count"
    assert amended.requirements[-1].id == "R9"
    last = amended.amendments[-1]
    assert (last.id, last.date, last.requirements) == ("A5", TODAY, ["R9"])
    assert last.requirement == LINES.requirement
    # round-trip YAML keeps the owner's formatting: the diff only adds lines
    diff = list(difflib.unified_diff(spec_text.splitlines(), text.splitlines(), lineterm=""))
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    assert removed == [] and any("line_count" in line for line in added)


def test_repurposing_a_column_is_a_conflict_naming_it(spec_text: str) -> None:
    """Giving order_amount (money) a new meaning is returned to the owner, not written."""
    draft = line_count_draft(
        columns=[
            {
                "output": "orders",
                "name": "order_amount",
                "type": "integer",
                "required": True,
                "description": "Number of lines of the order.",
                "why": "Reuse the existing column.",
                "tolerance": None,
            }
        ]
    )
    conflict = judge(spec_text, draft)
    assert isinstance(conflict, Conflict)
    assert conflict.clauses == ("order_amount",)
    assert "repurposes column order_amount" in conflict.explanation
    assert "Money charged" in conflict.explanation  # what it means today, for the owner


def test_rewriting_an_earlier_requirement_needs_the_request_to_say_so(spec_text: str) -> None:
    r4 = {
        "id": "R4",
        "text": "WHEN an order is cancelled THE SYSTEM SHALL report what was charged until "
        "its refund arrives.",
        "tests": ["tests/test_orders.py::test_cancelled_order_awaiting_refund"],
    }
    draft = line_count_draft(requirements=[r4], columns=[])
    vague = AmendmentAsk("Show what cancelled orders were charged until the refund arrives.")
    conflict = judge(spec_text, draft, vague)
    assert isinstance(conflict, Conflict) and conflict.clauses == ("R4",)

    explicit = AmendmentAsk("Replace R4: show what cancelled orders were charged until refunded.")
    checked = judge(spec_text, draft, explicit)
    assert isinstance(checked, CheckedDraft)
    assert checked.changed_requirements == ("R4",) and checked.changes_earlier_clauses


def test_the_models_conflict_names_the_amendment(spec_text: str) -> None:
    draft = line_count_draft(
        conflict={
            "clauses": ["A3", "R4", "Z99"],
            "explanation": "Cancelled orders stop counting as revenue the day they are "
            "cancelled (A3).",
        },
        amendment=None,
    )
    conflict = judge(spec_text, draft)
    assert isinstance(conflict, Conflict)
    assert conflict.clauses == ("A3", "R4")
    assert "Z99" in conflict.explanation  # named but unknown: said, not dropped silently
    assert conflict.render().startswith("conflicts with A3, R4:")


def test_amendments_are_history_and_cannot_be_removed(spec_text: str) -> None:
    ask = AmendmentAsk("Remove A2 and drop item_count.")
    conflict = judge(spec_text, line_count_draft(removes=["A2"]), ask)
    assert isinstance(conflict, Conflict) and conflict.clauses == ("A2",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"requirements": [{"id": "R9", "text": "Count lines.", "tests": ["t.py::t"]}]}, "EARS"),
        (
            {"requirements": [{"id": "R9", "text": "THE SYSTEM SHALL count.", "tests": []}]},
            "tests that prove it",
        ),
        ({"requirements": [{"id": "A1", "text": "THE SYSTEM SHALL x.", "tests": ["a::b"]}]}, "A1"),
        ({"amendment": None}, "neither a conflict nor an amendment"),
        ({"requirements": [], "columns": []}, "changes nothing"),
        ({"removes": ["nothing_like_it"]}, "not in the spec"),
    ],
)
def test_unusable_drafts_are_refused_with_the_reason(
    spec_text: str, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(DraftInvalid, match=message):
        judge(spec_text, line_count_draft(**change))


def test_a_draft_that_breaks_the_spec_is_refused(spec_text: str) -> None:
    bad_type = line_count_draft(columns=[{**line_count_draft()["columns"][0], "type": "float128"}])
    checked = judge(spec_text, bad_type)
    assert isinstance(checked, CheckedDraft)
    with pytest.raises(DraftInvalid, match="would not validate"):
        amend_spec_text(spec_text, checked, LINES, TODAY)


def test_explicitness_is_literal() -> None:
    assert explicitly_changes(AmendmentAsk("Replace R4 with ..."), "R4")
    assert explicitly_changes(AmendmentAsk("drop column list_amount"), "list_amount")
    assert not explicitly_changes(AmendmentAsk("Replace R4 with ..."), "R44")
    assert not explicitly_changes(AmendmentAsk("R4 is great; add a column"), "R4")
    assert not explicitly_changes(AmendmentAsk("change the dashboard"), "order_amount")


def test_requests_are_bounded_and_not_empty() -> None:
    with pytest.raises(InputError, match="empty"):
        AmendmentAsk("   ")
    with pytest.raises(InputError, match="at most 2000"):
        AmendmentAsk("x" * 2001)


def test_the_draft_schema_accepts_what_the_parser_accepts() -> None:
    """Every property is required under strict structured output; parse_draft reads the JSON."""
    assert set(DRAFT_JSON_SCHEMA["required"]) == set(SpecDraft.model_fields)
    draft = parse_draft("```json\n" + json.dumps(line_count_draft()) + "\n```")
    assert draft.columns[0].name == "line_count"
    with pytest.raises(DraftInvalid, match="not valid JSON"):
        parse_draft("{nope")
    with pytest.raises(DraftInvalid, match="draft format"):
        parse_draft(json.dumps({"columns": "x"}))
