"""An owner's amendment through the whole pipeline, with the scripted LLM over real HTTP.

Three scenarios on the ``orders`` example (issue 11):

- a clean additive request (a line-count column) ends in a green merge request on its own
  branch whose description shows the spec change first, then the code, then the evidence
  with every earlier requirement re-verified;
- the same request implemented by a model that repurposes ``order_amount`` is rejected by
  verification, and the report names the column in the contract and the data diff;
- a request that contradicts amendment A3 is returned as a conflict naming A3, and nothing
  else happens (one LLM call, no code, no merge request).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.agent.amend import AmendmentAsk
from specfleet.agent.budget import Budget
from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner
from specfleet.core.db import AmendmentRequest, LLMCall
from specfleet.worker.pipeline import EvaluationResult, run_evaluation
from specfleet.worker.pipeline.amend import request_amendment
from specfleet.worker.pipeline.llm_plan import LLMPlanning
from tests.support.scripted_llm import Step, scripted_llm
from tests.worker import test_pipeline as base
from tests.worker.test_pipeline import WINDOW, Fleet

pytestmark = pytest.mark.network

index_url, caches, fleet = base.index_url, base.caches, base.fleet

KEY = "sk-amend-0123456789abcdefghijklmnop"
OWNER = "ana.silva@example.com"
LINES = AmendmentAsk(
    "I want to see the number of lines in each order.",
    "The warehouse plans picking per order line, not per item.",
)
NEW_TEST = "tests/test_orders.py::test_line_count_counts_lines"

DRAFT: dict[str, Any] = {
    "summary": "A new column line_count and requirement R9.",
    "conflict": None,
    "amendment": {
        "requirement": LINES.requirement,
        "change": "Added line_count: the number of lines of the order.",
        "why": "Picking is planned per order line; item_count counts items, not lines.",
    },
    "requirements": [
        {
            "id": "R9",
            "text": "THE SYSTEM SHALL report line_count as the number of the order's lines.",
            "tests": [NEW_TEST],
        }
    ],
    "columns": [
        {
            "output": "orders",
            "name": "line_count",
            "type": "integer",
            "required": True,
            "description": "Number of lines of the order in the shop's export.",
            "why": "The warehouse plans picking per order line.",
            "tolerance": None,
        }
    ],
    "removes": [],
}


def _replace(path: str, search: str, replace: str) -> dict[str, Any]:
    return {"kind": "replace", "path": path, "search": search, "replace": replace, "content": None}


def _plan(summary: str, edits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": summary,
        "no_change": False,
        "no_change_reason": None,
        "rationale": [
            {"path": "pipeline/transform.py", "why": "count the order's lines", "cites": ["R9"]}
        ],
        "edits": edits,
        "amendment": None,
    }


ITEM_COUNT = '    orders["item_count"] = grouped["quantity"].sum().astype("int64")\n'
AMOUNT_FIELD = '        pa.field("order_amount", pa.decimal128(10, 2), nullable=False),\n'
IMPLEMENTATION = _plan(
    "Count each order's lines into line_count (R9).",
    [
        _replace(
            "pipeline/transform.py",
            '    "order_amount",\n)',
            '    "order_amount",\n    "line_count",\n)',
        ),
        _replace(
            "pipeline/transform.py",
            ITEM_COUNT,
            ITEM_COUNT + '    orders["line_count"] = grouped["line_no"].count().astype("int64")\n',
        ),
        _replace(
            "pipeline/build.py",
            AMOUNT_FIELD,
            AMOUNT_FIELD + '        pa.field("line_count", pa.int32(), nullable=False),\n',
        ),
        _replace(
            "tests/test_orders.py",
            '    "order_amount": pa.decimal128(10, 2),\n}',
            '    "order_amount": pa.decimal128(10, 2),\n    "line_count": pa.int32(),\n}',
        ),
        _replace(
            "tests/test_orders.py",
            "# R1\ndef test_unpaid_order(orders):",
            "# R9\n"
            "def test_line_count_counts_lines(orders):\n"
            "    lines: dict[int, int] = defaultdict(int)\n"
            '    for row in _fixture_rows("raw_orders"):\n'
            '        lines[int(row["order_id"])] += 1\n'
            '    assert {order_id: row["line_count"] for order_id, row in orders.items()} == lines\n'
            '    assert orders[10003]["line_count"] == 3\n'
            "\n\n# R1\ndef test_unpaid_order(orders):",
        ),
    ],
)
# The semantic drift the issue warns about: the new wish answered by reusing the money column.
REPURPOSED = _plan(
    "Reuse order_amount for the line count.",
    [
        _replace(
            "pipeline/transform.py",
            '    orders["order_amount"] = [cents_to_decimal(int(c)) for c in orders["paid_cents"]]\n',
            '    orders["order_amount"] = grouped["line_no"].count().astype("int64")\n',
        ),
        _replace(
            "pipeline/build.py",
            AMOUNT_FIELD,
            '        pa.field("order_amount", pa.int32(), nullable=False),\n',
        ),
    ],
)
CONFLICT: dict[str, Any] = {
    **DRAFT,
    "summary": "Conflicts with A3.",
    "conflict": {
        "clauses": ["A3", "R4"],
        "explanation": "Amendment A3 made cancelled orders stop counting as revenue the day "
        "they are cancelled; showing their charged amount until the refund arrives undoes it.",
    },
    "amendment": None,
    "requirements": [],
    "columns": [],
}


def _planning(engine: Engine, base_url: str, rounds: int) -> LLMPlanning:
    planner = LLMPlanner(
        LLMClient(LLMConfig(base_url=base_url, api_key=KEY, model="test-model", max_retries=0)),
        (KEY,),
    )
    return LLMPlanning(planner, Budget(calls=6, tokens=3_000_000, cost_usd=5.0), engine, rounds)


def _amend(fleet: Fleet, ask: AmendmentAsk) -> tuple[EvaluationResult, AmendmentRequest]:
    queued = request_amendment(fleet.engine, "orders", ask, OWNER, WINDOW)
    result = run_evaluation(queued.evaluation_id, fleet.deps)
    with Session(fleet.engine) as session:
        request = session.get(AmendmentRequest, queued.request_id)
        assert request is not None
        session.expunge(request)
    return result, request


def test_a_clean_amendment_ends_in_a_green_merge_request_spec_first(fleet: Fleet) -> None:
    with scripted_llm(Step(plan=DRAFT), Step(plan=IMPLEMENTATION)) as server:
        fleet.deps.planner = _planning(fleet.engine, server.base_url, rounds=1)
        result, request = _amend(fleet, LINES)
    assert result.outcome == "proposed", (result.reason, result.summary.get("verification"))
    assert request.state == "proposed" and request.amendment_id == "A5"
    assert request.merge_request_url == result.merge_request_url
    (mr,) = fleet.merge_requests("orders")
    assert mr.branch == f"specfleet/amend-{request.id}"
    assert mr.title.startswith("specfleet: amendment A5: I want to see the number of lines")
    text = mr.description
    order = [
        text.index("## Spec change: amendment A5"),
        text.index("## What changed and why"),
        text.index("## Verification"),
        text.index("## Requirements verified"),
    ]
    assert order == sorted(order), "spec change, then the code, then the evidence"
    assert "`line_count` | integer |" in text and "| R9 |" in text
    assert f"| R9 | new | `{NEW_TEST}` | passed |" in text
    assert "| R1 | earlier | `tests/test_orders.py::test_unpaid_order` | passed |" in text
    assert "**Verification: passed.**" in text
    assert "changes earlier clauses" not in text  # purely additive: no bold warning
    # the merge request's branch holds the amended spec and the implementation
    repo = fleet.forge.project_path("orders")
    spec = _git(repo, "show", f"{mr.branch}:dataproduct.yaml")
    assert "- id: A5" in spec and "- id: R9" in spec and "name: line_count" in spec
    assert "line_count" in _git(repo, "show", f"{mr.branch}:pipeline/transform.py")
    # the drafting call and the implementation call, both on this evaluation; key never sent
    with Session(fleet.engine) as session:
        calls = session.exec(select(LLMCall).where(LLMCall.product_id == "orders")).all()
    assert [c.purpose for c in calls] == ["amend", "plan"]
    assert all(c.evaluation_id == result.evaluation_id for c in calls)
    assert KEY not in "".join(r.text for r in server.received)
    assert "draft-spec" in fleet.stages(result.evaluation_id)
    assert "line_count" in server.received[1].prompt  # the model saw the amended spec


def test_a_model_that_repurposes_order_amount_is_rejected_naming_the_column(
    fleet: Fleet,
) -> None:
    with scripted_llm(Step(plan=DRAFT), Step(plan=REPURPOSED)) as server:
        fleet.deps.planner = _planning(fleet.engine, server.base_url, rounds=1)
        result, request = _amend(fleet, LINES)
    assert result.outcome == "needs-human"
    assert request.state == "needs-human"
    assert fleet.merge_requests("orders") == []
    report = str(result.summary.get("verification"))
    contract, data = report.split("### Data on the fixtures", 1)
    contract = contract.split("### Output contracts", 1)[1]
    assert "order_amount" in contract and "line_count" in contract  # type changed; missing
    assert "order_amount" in data.split("### Failure modes", 1)[0]  # values changed
    assert "tests the requirements name did not pass" in report or "failed" in report


def test_a_request_that_contradicts_a3_is_returned_as_a_conflict(fleet: Fleet) -> None:
    ask = AmendmentAsk("Show cancelled orders' charged amount until their refund arrives.")
    with scripted_llm(Step(plan=CONFLICT)) as server:
        fleet.deps.planner = _planning(fleet.engine, server.base_url, rounds=1)
        result, request = _amend(fleet, ask)
    assert result.outcome == "conflict"
    assert request.state == "conflict"
    assert request.conflict is not None and request.conflict["clauses"] == ["A3", "R4"]
    assert "A3" in request.conflict["explanation"]
    assert len(server.received) == 1  # drafting only: no implementation was asked for
    stages = fleet.stages(result.evaluation_id)
    assert "draft-spec" in stages and "agent" not in stages and "verify" not in stages
    assert fleet.merge_requests("orders") == []


def test_without_an_llm_the_worker_says_so(fleet: Fleet) -> None:
    """A worker without an endpoint (the CLI refuses earlier) ends it as needs-human."""
    fleet.deps.planner = None
    result, request = _amend(fleet, LINES)
    assert result.outcome == "needs-human" and "LLM endpoint" in result.reason
    assert request.state == "needs-human"


def _git(repo: Any, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout
