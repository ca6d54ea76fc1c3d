"""The planning loop end to end through the real openai client and the scripted server.

Verification here is a cheap stand-in (the real gate runs in test_loop_gate.py): a candidate
is green unless its build.py carries the marker of a broken change.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from specfleet.agent.budget import Budget, DatabaseRecorder, MemoryRecorder
from specfleet.agent.context import ContextInputs
from specfleet.agent.deterministic import DeterministicChange
from specfleet.agent.guards import GuardContext
from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner
from specfleet.agent.loop import run_loop
from specfleet.agent.loop_model import Check, LoopOutcome, PlanRequest
from specfleet.core.settings import get_settings
from specfleet.core.spec import load_spec
from tests.conftest import EXAMPLES
from tests.support.scripted_llm import ScriptedLLM, Step, scripted_llm

SEARCH = "    # exits is read only to validate the row; visitors are entries (amendment A2).\n"
GOOD_REPLACE = "    # exits are validated, never counted as visitors (R2, amendment A2).\n"
BROKEN_REPLACE = "    # BROKEN: counts exits too\n"
AMENDMENT = {
    "requirement": "Follow ORG-GUIDE-001.",
    "change": "Clarified how exits are handled.",
    "why": "ORG-GUIDE-001 asks for clear code.",
}
PRICES = {"test-model": (1.0, 0.5, 4.0)}
ROOMY = Budget(calls=10, tokens=1_000_000, cost_usd=10.0)


def plan(replace: str = GOOD_REPLACE, **overrides: object) -> dict:
    document = {
        "summary": "Clarify R2 in the code.",
        "no_change": False,
        "no_change_reason": None,
        "rationale": [{"path": "footfall/build.py", "why": "clearer", "cites": ["R2"]}],
        "edits": [
            {
                "kind": "replace",
                "path": "footfall/build.py",
                "search": SEARCH,
                "replace": replace,
                "content": None,
            }
        ],
        "amendment": AMENDMENT,
    }
    document.update(overrides)
    return document


def cheap_verify(candidate: Path) -> Check:
    text = (candidate / "footfall" / "build.py").read_text()
    if "BROKEN" in text:
        return Check(False, "FAILED tests/test_footfall.py::test_exits_are_not_visitors", (1,))
    return Check(True, "", (0, len(text)))


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLES / "store_footfall", tmp_path / "baseline"))


def request(baseline: Path, **overrides: object) -> PlanRequest:
    spec = load_spec(baseline / "dataproduct.yaml")
    values: dict = {
        "product_id": spec.id,
        "window": "2026-W48",
        "context": ContextInputs(spec=spec, repo=baseline),
        "guard": GuardContext(),
        "max_rounds": 3,
    }
    values.update(overrides)
    return PlanRequest(**values)


def planner(server: ScriptedLLM, secrets: tuple[str, ...] = (), **config: object) -> LLMPlanner:
    values: dict = {
        "base_url": server.base_url,
        "api_key": "sk-test-key",
        "model": "test-model",
        "timeout_seconds": 5.0,
        "max_retries": 2,
        "prices": PRICES,
        **config,
    }
    return LLMPlanner(LLMClient(LLMConfig(**values)), secrets)


def run(
    baseline: Path,
    workspace: Path,
    server: ScriptedLLM | None,
    *,
    deterministic: DeterministicChange | None = None,
    budget: Budget = ROOMY,
    recorder: object | None = None,
    config: dict | None = None,
    **overrides: object,
) -> LoopOutcome:
    return run_loop(
        request(baseline, **overrides),
        baseline=baseline,
        workspace=workspace,
        deterministic=deterministic,
        planner=planner(server, **(config or {})) if server else None,
        verify=cheap_verify,
        budget=budget,
        recorder=recorder or MemoryRecorder(),  # type: ignore[arg-type]
    )


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with scripted_llm() as running:
        yield running


def test_a_good_plan_is_proposed_with_its_amendment_and_usage(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """One round, one call: the candidate carries the edit and the appended amendment."""
    server.add(Step(plan=plan(), prompt_tokens=5000, cached_tokens=4000, completion_tokens=300))
    outcome = run(baseline, tmp_path / "ws", server)
    assert outcome.outcome == "proposed" and outcome.source == "llm"
    assert (outcome.rounds, outcome.calls) == (1, 1)
    assert (outcome.prompt_tokens, outcome.cached_prompt_tokens, outcome.completion_tokens) == (
        5000,
        4000,
        300,
    )
    assert outcome.cost_usd == pytest.approx((1000 * 1.0 + 4000 * 0.5 + 300 * 4.0) / 1e6)
    assert outcome.files_changed == ("dataproduct.yaml", "footfall/build.py")
    assert outcome.candidate is not None
    assert GOOD_REPLACE in (outcome.candidate / "footfall" / "build.py").read_text()
    spec = load_spec(outcome.candidate / "dataproduct.yaml")
    assert spec.amendments[-1].id == "A4" and spec.amendments[-1].change == AMENDMENT["change"]
    assert "+            # exits are validated" in outcome.diff  # re-indented to fit
    assert outcome.rationale[0].cites == ["R2"]
    assert SEARCH in (baseline / "footfall" / "build.py").read_text()  # baseline untouched


def test_a_plan_that_fails_verification_is_repaired(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """The failing tests go back to the model with its answer; the repaired plan is proposed."""
    server.add(Step(plan=plan(BROKEN_REPLACE)), Step(plan=plan()))
    outcome = run(baseline, tmp_path / "ws", server)
    assert outcome.outcome == "proposed" and (outcome.rounds, outcome.calls) == (2, 2)
    repair = server.received[1].body["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "BROKEN" in repair[2]["content"]
    assert "test_exits_are_not_visitors" in repair[3]["content"]
    assert "[untrusted data: verification report]" in repair[3]["content"]
    assert "round 1, candidate 1: 1 edits applied; verification not publishable" in outcome.tried


def test_malformed_json_is_fed_back_and_then_needs_a_human(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """Answers that are not JSON: each round is told why; after the last, needs-human."""
    server.add(*[Step(content="Sure! Here is the plan: {edits: [}") for _ in range(2)])
    recorder = MemoryRecorder()
    outcome = run(baseline, tmp_path / "ws", server, max_rounds=2, recorder=recorder)
    assert outcome.outcome == "needs-human" and (outcome.rounds, outcome.calls) == (2, 2)
    assert [call.outcome for call in recorder.calls] == ["invalid", "invalid"]
    assert "not valid JSON" in server.received[1].body["messages"][-1]["content"]
    assert any("unusable answer" in attempt for attempt in outcome.tried)
    assert "no candidate passed verification in 2 round(s)" in outcome.reasons


def test_a_hostile_plan_is_refused_before_anything_is_written(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """Traversal, CI config, deleting the spec and a token: all refused, fed back, never written."""
    (baseline / ".gitlab-ci.yml").write_text("test:\n  script: [pytest -q]\n")
    hostile = plan(
        edits=[
            {
                "kind": "write",
                "path": "../escape.py",
                "search": None,
                "replace": None,
                "content": "x = 1\n",
            },
            {
                "kind": "write",
                "path": ".gitlab-ci.yml",
                "search": None,
                "replace": None,
                "content": "x: [env]\n",
            },
            {
                "kind": "delete",
                "path": "dataproduct.yaml",
                "search": None,
                "replace": None,
                "content": None,
            },
            {
                "kind": "replace",
                "path": "footfall/build.py",
                "search": SEARCH,
                "content": None,
                "replace": SEARCH + '    TOKEN = "glpat-abcdefghijklmnopqrstuvwx"\n',
            },
        ]
    )
    server.add(Step(plan=hostile), Step(plan=hostile))
    workspace = tmp_path / "ws"
    outcome = run(baseline, workspace, server, max_rounds=2)
    assert outcome.outcome == "needs-human" and outcome.calls == 2
    feedback = server.received[1].body["messages"][-1]["content"]
    for reason in ("leaves the repository", "CI configuration", "spec is never deleted", "secret"):
        assert reason in feedback
    assert "4 of 4 edits rejected" in outcome.tried[0]
    # the evaluation's record names each refused edit, its path and the reason
    assert "edit 3 (delete dataproduct.yaml): the spec is never deleted" in outcome.tried[0]
    assert not (tmp_path / "escape.py").exists() and not (workspace / "escape.py").exists()
    assert sorted(p.name for p in workspace.iterdir()) == ["base"]  # no candidate was created
    assert (baseline / ".gitlab-ci.yml").read_text() == "test:\n  script: [pytest -q]\n"


def test_a_timeout_ends_as_needs_human_with_the_reason(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """The endpoint never answers in time: one recorded timed-out call, no retry of the round."""
    server.add(Step(plan=plan(), delay=1.5), Step(plan=plan(), delay=1.5))
    recorder = MemoryRecorder()
    outcome = run(
        baseline,
        tmp_path / "ws",
        server,
        recorder=recorder,
        config={"timeout_seconds": 0.3, "max_retries": 1},
    )
    assert outcome.outcome == "needs-human" and outcome.calls == 1 and outcome.tokens == 0
    assert "the LLM endpoint timed out" in outcome.reasons
    assert [(c.outcome, c.attempts) for c in recorder.calls] == [("timeout", 2)]


def test_a_timeout_with_a_deterministic_fallback_says_the_llm_path_failed(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """Issue 16: the fallback is proposed, and the outcome carries why the LLM path failed."""
    server.add(Step(plan=plan(), delay=1.5), Step(plan=plan(), delay=1.5))
    outcome = run(
        baseline,
        tmp_path / "ws",
        server,
        deterministic=_requirements_bump(),
        config={"timeout_seconds": 0.3, "max_retries": 0},
    )
    assert outcome.outcome == "proposed" and outcome.source == "deterministic"
    assert "timed out" in outcome.llm_failure and outcome.llm_failure.startswith("round 1")


def test_a_rate_limit_then_success_is_proposed(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """A 429 with Retry-After is retried inside one call; the plan is proposed."""
    server.add(
        Step(status=429, headers={"Retry-After": "1"}, error="rate limited"), Step(plan=plan())
    )
    recorder = MemoryRecorder()
    outcome = run(baseline, tmp_path / "ws", server, recorder=recorder)
    assert outcome.outcome == "proposed" and outcome.calls == 1
    assert recorder.calls[0].attempts == 2 and len(server.received) == 2


def test_the_model_may_say_the_current_implementation_is_best(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """no_change with a reason ends as no-change, saying why."""
    server.add(
        Step(
            plan=plan(
                edits=[],
                amendment=None,
                no_change=True,
                no_change_reason="no rule applies and R1-R6 hold",
            )
        )
    )
    outcome = run(baseline, tmp_path / "ws", server)
    assert outcome.outcome == "no-change" and outcome.calls == 1
    assert outcome.reasons == ("the current implementation stays: no rule applies and R1-R6 hold",)


def _requirements_bump() -> DeterministicChange:
    def apply(directory: Path) -> list[str]:
        target = directory / "requirements.txt"
        target.write_text(target.read_text().replace("pytest==8.3.3", "pytest==8.3.4"))
        return ["requirements.txt"]

    from specfleet.agent.plan import AmendmentDraft

    return DeterministicChange(
        summary="pytest 8.3.3 → 8.3.4",
        diff="-pytest==8.3.3\n+pytest==8.3.4\n",
        apply=apply,
        amendment=AmendmentDraft(
            requirement="Keep current.", change="pytest 8.3.3 → 8.3.4.", why="ORG-DEP-003."
        ),
    )


def test_without_an_llm_the_deterministic_change_goes_through_the_gate(
    baseline: Path, tmp_path: Path
) -> None:
    """No planner: the remediators' change alone is verified and proposed; no change is no-change."""
    outcome = run(baseline, tmp_path / "ws", None, deterministic=_requirements_bump())
    assert outcome.outcome == "proposed" and outcome.source == "deterministic"
    assert outcome.files_changed == ("dataproduct.yaml", "requirements.txt") and outcome.calls == 0
    assert outcome.amendment is not None and "pytest" in outcome.amendment.change
    nothing = run(baseline, tmp_path / "ws2", None)
    assert nothing.outcome == "no-change"
    assert "deterministic remediators found nothing" in nothing.reasons[0]


def test_the_model_sees_the_deterministic_change_applied(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """With both: the prompt shows the remediators' diff and files with it applied."""
    server.add(Step(plan=plan()))
    outcome = run(baseline, tmp_path / "ws", server, deterministic=_requirements_bump())
    prompt = server.received[0].prompt
    assert "-pytest==8.3.3" in prompt and "pytest==8.3.4" in prompt
    assert outcome.outcome == "proposed"
    assert (
        "requirements.txt" in outcome.files_changed and "footfall/build.py" in outcome.files_changed
    )


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_budgets_come_from_recorded_calls_so_redelivery_cannot_overspend(
    database: str,
    baseline: Path,
    tmp_path: Path,
    server: ScriptedLLM,
    request: pytest.FixtureRequest,
) -> None:
    """Calls are llm_call rows; a second delivery of the same task sees them and asks nothing."""
    from sqlmodel import Session, select

    from specfleet.core.db import LLMCall, ensure_schema, make_engine

    url = (
        f"sqlite:///{tmp_path / 'db.sqlite'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    ensure_schema(engine)
    recorder = DatabaseRecorder(engine)
    budget = Budget(calls=1, tokens=1_000_000, cost_usd=10.0)
    server.add(Step(plan=plan(BROKEN_REPLACE), prompt_tokens=700, completion_tokens=50))
    first = run(baseline, tmp_path / "ws1", server, budget=budget, recorder=recorder)
    assert first.outcome == "needs-human" and first.calls == 1
    assert any("call budget exhausted (1 of 1 calls" in reason for reason in first.reasons)
    again = run(baseline, tmp_path / "ws2", server, budget=budget, recorder=recorder)
    assert again.outcome == "needs-human" and again.calls == 0
    assert len(server.received) == 1
    with Session(engine) as session:
        rows = session.exec(select(LLMCall)).all()
    assert [
        (r.product_id, r.window, r.purpose, r.prompt_tokens, r.completion_tokens) for r in rows
    ] == [("store_footfall", "2026-W48", "plan", 700, 50)]
    assert rows[0].cost_usd == pytest.approx((700 * 1.0 + 50 * 4.0) / 1e6)
    engine.dispose()


def test_a_token_budget_stops_a_prompt_that_would_not_fit(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """A prompt larger than the remaining token budget is never sent."""
    outcome = run(
        baseline, tmp_path / "ws", server, budget=Budget(calls=5, tokens=100, cost_usd=1.0)
    )
    assert outcome.outcome == "needs-human" and outcome.calls == 0 and not server.received
    assert "token budget exhausted" in outcome.reasons[0]


def test_best_of_n_chooses_the_green_candidate_with_the_lowest_score(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """Two green candidates: the verifier's score (here: the smaller file) decides."""
    longer = GOOD_REPLACE + "    # and a second, longer comment line that makes the file larger\n"
    server.add(Step(plan=plan(longer)), Step(plan=plan()))
    outcome = run(baseline, tmp_path / "ws", server, candidates=2)
    assert outcome.outcome == "proposed" and outcome.calls == 2 and outcome.rounds == 1
    assert outcome.candidate is not None and outcome.candidate.name == "r1c2"


def test_no_secret_from_settings_reaches_any_prompt(
    baseline: Path, tmp_path: Path, server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Canary secrets in settings (and planted in the repository) never appear in a request body."""
    key, forge = "canary-llm-key-5b1e0d", "canary-forge-token-93ac21"
    monkeypatch.setenv("SPECFLEET_LLM_API_KEY", key)
    monkeypatch.setenv("SPECFLEET_GITLAB_TOKEN", forge)
    get_settings.cache_clear()
    secrets = tuple(get_settings().secret_values())
    build = baseline / "footfall" / "build.py"
    build.write_text(
        build.read_text() + f'\n# deploy with {forge} or {key}\nTOKEN = "ghp_{"a1" * 18}"\n'
    )
    (baseline / "README.md").write_text(f"Forge token: {forge}\n")
    server.add(Step(plan=plan(BROKEN_REPLACE)), Step(plan=plan()))
    spec = load_spec(baseline / "dataproduct.yaml")
    outcome = run_loop(
        request(
            baseline,
            context=ContextInputs(spec=spec, repo=baseline, known_secrets=secrets),
            guard=GuardContext(known_secrets=secrets),
        ),
        baseline=baseline,
        workspace=tmp_path / "ws",
        deterministic=None,
        planner=planner(server, secrets, api_key=key),
        verify=lambda c: (
            Check(False, f"test output mentions {forge}", (1,))
            if "BROKEN" in (c / "footfall" / "build.py").read_text()
            else Check(True, "", ())
        ),
        budget=ROOMY,
        recorder=MemoryRecorder(),
    )
    assert outcome.outcome == "proposed" and len(server.received) == 2
    for received in server.received:
        assert key not in received.text and forge not in received.text
        assert "ghp_a1a1" not in received.text
    assert "[REDACTED]" in server.received[0].prompt
    assert server.received[0].headers["authorization"] == f"Bearer {key}"  # only as the credential


def test_a_missed_search_and_broken_python_are_fed_back_with_the_nearest_text(
    baseline: Path, tmp_path: Path, server: ScriptedLLM
) -> None:
    """A hallucinated SEARCH gets the real nearby lines back; broken Python gets its line."""
    wrong = plan(
        edits=[
            {
                "kind": "replace",
                "path": "footfall/build.py",
                "content": None,
                "search": "    # exits are read only to validate rows; visitors are entries (A2).\n",
                "replace": GOOD_REPLACE,
            },
            {
                "kind": "replace",
                "path": "footfall/build.py",
                "content": None,
                "search": "EXIT_OK = 0\n",
                "replace": "EXIT_OK = (\n",
            },
        ]
    )
    server.add(
        Step(plan=wrong, prompt_tokens=4000, completion_tokens=100),
        Step(plan=plan(), prompt_tokens=4500, cached_tokens=4000, completion_tokens=120),
    )
    outcome = run(baseline, tmp_path / "ws", server)
    assert outcome.outcome == "proposed" and (outcome.rounds, outcome.calls) == (2, 2)
    assert (outcome.prompt_tokens, outcome.cached_prompt_tokens) == (8500, 4000)
    assert outcome.cost_usd == pytest.approx((4000 + 500 + 4000 * 0.5 + 220 * 4.0) / 1e6)
    feedback = server.received[1].body["messages"][-1]["content"]
    assert "the nearest passage" in feedback
    assert (
        "# exits is read only to validate the row; visitors are entries (amendment A2)." in feedback
    )
    assert "not valid Python" in feedback


def test_the_dependency_remediator_feeds_the_loop_without_an_llm(tmp_path: Path) -> None:
    """orders under ORG-PY-004 (pandas >= 2.2): the pin moves, the amendment cites the rule."""
    import datetime as dt

    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    from specfleet.agent.deterministic import deterministic_from_dependencies
    from specfleet.agent.remediators.dependencies import propose
    from specfleet.core.health.pins import read_pins
    from specfleet.core.health.releases import Release, ReleaseFacts
    from specfleet.core.health.report import assess
    from specfleet.core.health.upgrades import MinimumVersion, UpgradePolicy

    today = dt.date(2026, 11, 22)
    baseline = Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "orders"))
    spec = load_spec(baseline / "dataproduct.yaml")
    pins = read_pins(baseline, spec.implementation.dependencies)
    uploaded = dt.datetime(2024, 9, 20, tzinfo=dt.UTC)
    pandas = canonicalize_name("pandas")
    facts = {
        pandas: ReleaseFacts(
            pandas, "2.2.3", (Release("1.5.3", uploaded), Release("2.2.3", uploaded)), uploaded
        )
    }
    report = assess(
        spec.id, spec.implementation.runtime, pins.pins, pins.problems, facts, {}, "none", today
    )
    policy = UpgradePolicy(
        minimums=(MinimumVersion(pandas, SpecifierSet(">=2.2"), "ORG-PY-004", allow_major=True),)
    )
    proposal = propose(baseline, pins, report, facts, policy, today)
    change = deterministic_from_dependencies(proposal, pins, "3.11")
    outcome = run_loop(
        request(baseline),
        baseline=baseline,
        workspace=tmp_path / "ws",
        deterministic=change,
        planner=None,
        verify=lambda candidate: Check(True, "", ()),
        budget=ROOMY,
        recorder=MemoryRecorder(),
    )
    assert outcome.outcome == "proposed" and outcome.source == "deterministic"
    assert outcome.candidate is not None
    assert "pandas==2.2.3" in (outcome.candidate / "requirements.txt").read_text()
    assert "-pandas==1.5.3" in outcome.diff and "+pandas==2.2.3" in outcome.diff
    amended = load_spec(outcome.candidate / "dataproduct.yaml").amendments[-1]
    assert "pandas 1.5.3 → 2.2.3" in amended.change and "ORG-PY-004" in amended.why
    assert outcome.rationale[0].cites == ["ORG-PY-004"]
