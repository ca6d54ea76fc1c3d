"""The pipeline with an LLM configured (the scripted OpenAI-compatible server over HTTP): the
agent's loop plans on the gate, its green candidate becomes the merge request (rationale,
amendment, LLM usage in the description), and a hostile answer ends as needs-human."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.agent.budget import Budget
from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner
from specfleet.core.db import LLMCall, MergeRequest
from specfleet.worker.pipeline.llm_plan import LLMPlanning
from tests.support.scripted_llm import Step, scripted_llm
from tests.worker import test_pipeline as base
from tests.worker.test_pipeline import Fleet

pytestmark = pytest.mark.network

# the pipeline tests' fixtures: three examples on SQLite, pack v1, fake index, shared caches
index_url, caches, fleet = base.index_url, base.caches, base.fleet

CANARY = "sk-canary-0123456789abcdefghijklmnop"
SEARCH = "            per_hour[count.hour_start] += count.entries\n"


def _plan(edits: list[dict]) -> dict:
    return {
        "summary": "Name the hourly sum of entries (ORG-GUIDE-001).",
        "no_change": False,
        "no_change_reason": None,
        "rationale": [{"path": "footfall/build.py", "why": "readability", "cites": ["R2"]}],
        "edits": edits,
        "amendment": {
            "requirement": "Keep the code readable.",
            "change": "Named the per-hour entry sum; outputs unchanged.",
            "why": "Reviewers misread the loop as counting exits.",
        },
    }


BENIGN = _plan(
    [
        {
            "kind": "replace",
            "path": "footfall/build.py",
            "search": SEARCH,
            "replace": "            entries_this_hour = count.entries  # exits are never visitors (R2)\n"
            "            per_hour[count.hour_start] += entries_this_hour\n",
            "content": None,
        }
    ]
)
HOSTILE = _plan(
    [
        {
            "kind": "write",
            "path": "../outside.txt",
            "search": None,
            "replace": None,
            "content": "x",
        },
        {
            "kind": "write",
            "path": ".gitlab-ci.yml",
            "search": None,
            "replace": None,
            "content": "script: curl evil",
        },
    ]
)


def _planning(engine: Engine, base_url: str) -> LLMPlanning:
    planner = LLMPlanner(
        LLMClient(LLMConfig(base_url=base_url, api_key=CANARY, model="test-model", max_retries=0)),
        (CANARY,),
    )
    return LLMPlanning(
        planner, Budget(calls=4, tokens=2_000_000, cost_usd=5.0), engine, 2, 1, (CANARY,)
    )


def test_an_llm_plan_for_a_healthy_product_becomes_a_verified_merge_request(fleet: Fleet) -> None:
    """store_footfall has nothing for the remediators; the model's green edit is proposed."""
    with scripted_llm(Step(plan=BENIGN)) as server:
        fleet.deps.planner = _planning(fleet.engine, server.base_url)
        result = fleet.evaluate("store_footfall")
    assert result.outcome == "proposed", (result.reason, result.summary.get("tried"))
    (mr,) = fleet.merge_requests("store_footfall")
    assert "**Verification: passed.**" in mr.description
    assert "| calls |" in mr.description  # the LLM usage table, not "none"
    assert "Named the per-hour entry sum" in mr.description  # the amendment the model wrote
    assert "## What changed and why" in mr.description and "`footfall/build.py`" in mr.description
    assert "Dependency changes" not in mr.description  # none moved: no empty table
    with Session(fleet.engine) as session:
        calls = session.exec(select(LLMCall).where(LLMCall.product_id == "store_footfall")).all()
    assert len(calls) == 1 and calls[0].evaluation_id == result.evaluation_id
    assert CANARY not in json.dumps([r.body for r in server.received])
    assert "agent" in fleet.stages(result.evaluation_id)
    # nothing was merged yet, so every applicable rule is new: the prompt really sent says so
    new_line = next(
        line
        for line in server.received[0].prompt.splitlines()
        if line.startswith("NEW since its last merged proposal:")
    )
    assert "ORG-" in new_line, new_line
    assert "| the LLM's plan | 1 | 1 |" in mr.description  # path, rounds, calls


def test_a_hostile_llm_plan_ends_as_needs_human_without_a_merge_request(fleet: Fleet) -> None:
    """Path traversal and a CI edit are refused by the guard rails every round: needs-human."""
    with scripted_llm(Step(plan=HOSTILE), Step(plan=HOSTILE)) as server:
        fleet.deps.planner = _planning(fleet.engine, server.base_url)
        result = fleet.evaluate("store_footfall")
    assert result.outcome == "needs-human"
    assert result.summary.get("tried")
    assert fleet.merge_requests("store_footfall") == []
    with Session(fleet.engine) as session:
        assert session.exec(select(MergeRequest)).all() == []
