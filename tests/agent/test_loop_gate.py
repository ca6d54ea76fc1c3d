"""The loop with the real verification gate on store_footfall, through the scripted server:
a plan that breaks the product's tests is fed back with the failures and the repair goes green."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specfleet.agent.budget import Budget, MemoryRecorder
from specfleet.agent.context import ContextInputs
from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner
from specfleet.agent.loop import run_loop
from specfleet.agent.loop_model import Check, PlanRequest
from specfleet.core.spec import load_spec
from specfleet.worker.report import render_verdict
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.gate import verify
from tests.conftest import EXAMPLES
from tests.support.scripted_llm import Step, scripted_llm

pytestmark = pytest.mark.network

SEARCH = "            per_hour[count.hour_start] += count.entries\n"


def plan(replace: str) -> dict:
    return {
        "summary": "Name the hourly sum (ORG-GUIDE-001).",
        "no_change": False,
        "no_change_reason": None,
        "rationale": [
            {"path": "footfall/build.py", "why": "readability", "cites": ["R1", "ORG-GUIDE-001"]}
        ],
        "edits": [
            {
                "kind": "replace",
                "path": "footfall/build.py",
                "search": SEARCH,
                "replace": replace,
                "content": None,
            }
        ],
        "amendment": {
            "requirement": "Keep the code readable (ORG-GUIDE-001).",
            "change": "Named the per-hour entry sum; outputs unchanged.",
            "why": "Reviewers misread the loop as counting exits.",
        },
    }


BROKEN = plan("            per_hour[count.hour_start] += count.entries * 2  # doubled\n")
REPAIRED = plan(
    "            entries_this_hour = count.entries  # entries only: exits are never visitors (R2)\n"
    "            per_hour[count.hour_start] += entries_this_hour\n"
)


def test_a_plan_that_breaks_the_tests_is_repaired_through_the_real_gate(tmp_path: Path) -> None:
    """Round 1 doubles visitors: tests and data fail and go back; round 2 is green and proposed."""
    baseline = Path(shutil.copytree(EXAMPLES / "store_footfall", tmp_path / "baseline"))
    assert SEARCH in (baseline / "footfall" / "build.py").read_text()
    environments = EnvironmentCache(tmp_path / "environments")
    verdicts = []

    def gate(candidate: Path) -> Check:
        verdict = verify(
            load_spec(candidate / "dataproduct.yaml"), baseline, candidate, environments
        )
        verdicts.append(verdict)
        feedback = "\n".join(verdict.reasons) + "\n\n" + render_verdict(verdict)
        return Check(verdict.publishable, feedback, (len(verdict.reasons),), verdict)

    spec = load_spec(baseline / "dataproduct.yaml")
    with scripted_llm(Step(plan=BROKEN), Step(plan=REPAIRED)) as server:
        planner = LLMPlanner(
            LLMClient(
                LLMConfig(
                    base_url=server.base_url, api_key="sk-test", model="test-model", max_retries=0
                )
            )
        )
        outcome = run_loop(
            PlanRequest(spec.id, "2026-W48", ContextInputs(spec=spec, repo=baseline)),
            baseline=baseline,
            workspace=tmp_path / "ws",
            deterministic=None,
            planner=planner,
            verify=gate,
            budget=Budget(calls=5, tokens=1_000_000, cost_usd=5.0),
            recorder=MemoryRecorder(),
        )
    assert not verdicts[0].publishable
    assert outcome.outcome == "proposed", outcome.tried
    assert (outcome.rounds, outcome.calls) == (2, 2)
    repair = server.received[1].body["messages"][-1]["content"]
    assert "the candidate's tests failed" in repair
    assert "output data changed beyond the spec's tolerances" in repair
    assert "visitors" in repair  # the data diff names the column that changed
    assert outcome.check is not None and outcome.check.detail is verdicts[-1]
    assert verdicts[-1].publishable
    amended = load_spec(outcome.candidate / "dataproduct.yaml")  # type: ignore[operator]
    assert amended.amendments[-1].change == "Named the per-hour entry sum; outputs unchanged."
    assert amended.requirements == spec.requirements
