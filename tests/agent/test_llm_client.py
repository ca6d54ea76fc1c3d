"""The openai client against the scripted server over HTTP: retries, timeouts, fallbacks, usage."""

from __future__ import annotations

import pytest

from specfleet.agent.llm import LLMClient, LLMConfig, LLMPlanner, estimate_cost
from specfleet.agent.plan import PLAN_JSON_SCHEMA
from specfleet.core.errors import LLMError
from specfleet.core.settings import Settings
from tests.support.scripted_llm import ScriptedLLM, Step, scripted_llm

PLAN = {
    "summary": "nothing",
    "no_change": True,
    "no_change_reason": "already current",
    "rationale": [],
    "edits": [],
    "amendment": None,
}
MESSAGES = [{"role": "system", "content": "instructions"}, {"role": "user", "content": "product"}]
PRICES = {"test-model": (1.0, 0.5, 4.0)}


def client(server: ScriptedLLM, **overrides: object) -> LLMClient:
    config = {
        "base_url": server.base_url,
        "api_key": "sk-test-key",
        "model": "test-model",
        "organization": "org-fleet",
        "timeout_seconds": 5.0,
        "max_retries": 2,
        "prices": PRICES,
        **overrides,
    }
    return LLMClient(LLMConfig(**config))  # type: ignore[arg-type]


def plan_once(server: ScriptedLLM, **overrides: object):
    planner = LLMPlanner(client(server, **overrides))
    return planner.plan(MESSAGES, product_id="p", window="2026-W48", purpose="plan")


def test_a_structured_answer_is_parsed_with_usage_and_cost() -> None:
    """The request asks for the plan's JSON schema; tokens and cost are recorded per call."""
    with scripted_llm(
        Step(plan=PLAN, prompt_tokens=1000, cached_tokens=400, completion_tokens=200)
    ) as server:
        reply = plan_once(server)
    assert reply.plan is not None and reply.plan.no_change
    record = reply.record
    assert (record.prompt_tokens, record.cached_prompt_tokens, record.completion_tokens) == (
        1000,
        400,
        200,
    )
    assert record.cost_usd == pytest.approx((600 * 1.0 + 400 * 0.5 + 200 * 4.0) / 1e6)
    assert record.outcome == "ok" and record.attempts == 1
    (request,) = server.received
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "test-model"
    schema = request.body["response_format"]
    assert schema["type"] == "json_schema" and schema["json_schema"]["strict"] is True
    assert schema["json_schema"]["schema"] == PLAN_JSON_SCHEMA
    assert request.headers.get("openai-organization") == "org-fleet"


def test_a_429_is_retried_after_the_servers_retry_after() -> None:
    """A rate limit with Retry-After is retried by the SDK; one call, two HTTP attempts."""
    with scripted_llm(
        Step(status=429, error="slow down", headers={"Retry-After": "1"}), Step(plan=PLAN)
    ) as server:
        reply = plan_once(server)
    assert reply.plan is not None and reply.record.outcome == "ok"
    assert reply.record.attempts == 2 and len(server.received) == 2


def test_a_timeout_is_an_outcome_not_a_crash() -> None:
    """An endpoint slower than the time limit on every attempt ends as outcome timeout."""
    with scripted_llm(Step(plan=PLAN, delay=1.5), Step(plan=PLAN, delay=1.5)) as server:
        reply = plan_once(server, timeout_seconds=0.3, max_retries=1)
    assert reply.plan is None and reply.record.outcome == "timeout"
    assert "timed out" in (reply.problem or "")
    assert reply.record.attempts == 2 and reply.record.tokens == 0


def test_server_errors_that_outlast_the_retries_are_an_error_outcome() -> None:
    """Persistent 503s: retried, then reported with the status and the number of attempts."""
    steps = [Step(status=503, error="overloaded", headers={"Retry-After": "0"})] * 2
    with scripted_llm(*steps) as server:
        reply = plan_once(server, max_retries=1)
    assert reply.record.outcome == "error"
    assert "HTTP 503" in (reply.problem or "") and "2 attempts" in (reply.problem or "")


def test_an_endpoint_without_json_schema_support_gets_plain_json() -> None:
    """A 400 on response_format switches to plain JSON, parsed and validated, for later calls too."""
    fenced = "```json\n" + __import__("json").dumps(PLAN) + "\n```"
    with scripted_llm(Step(reject_schema=True), Step(content=fenced), Step(plan=PLAN)) as server:
        llm = client(server)
        planner = LLMPlanner(llm)
        first = planner.plan(MESSAGES, product_id="p", window="w", purpose="plan")
        second = planner.plan(MESSAGES, product_id="p", window="w", purpose="plan")
    assert first.plan is not None and second.plan is not None
    assert "response_format" in server.received[0].body
    assert "response_format" not in server.received[1].body
    assert "response_format" not in server.received[2].body


def test_malformed_json_is_an_invalid_outcome_naming_the_line() -> None:
    """Content that is not JSON is recorded as invalid, with tokens still counted."""
    with scripted_llm(
        Step(content='{"summary": "x",\n "edits": [}', completion_tokens=9)
    ) as server:
        reply = plan_once(server)
    assert reply.plan is None and reply.record.outcome == "invalid"
    assert "not valid JSON at line 2" in (reply.problem or "")
    assert reply.record.completion_tokens == 9


def test_json_that_is_not_a_plan_names_the_field() -> None:
    """A JSON answer with a bad field is invalid, and the problem names the field."""
    bad = {**PLAN, "edits": [{"kind": "chmod", "path": "x"}]}
    with scripted_llm(Step(plan=bad)) as server:
        reply = plan_once(server)
    assert reply.record.outcome == "invalid" and "edits.0.kind" in (reply.problem or "")


def test_an_unreadable_http_body_is_an_outcome() -> None:
    """A 200 whose body is not JSON at all does not crash the planner."""
    with scripted_llm(Step(raw_body=b"<html>proxy error</html>")) as server:
        reply = plan_once(server)
    assert reply.plan is None and reply.record.outcome in ("invalid", "error")


def test_refused_credentials_raise_llm_error() -> None:
    """A 401 is a configuration problem: LLMError telling which settings to check."""
    with (
        scripted_llm(Step(status=401, error="bad key")) as server,
        pytest.raises(LLMError) as caught,
    ):
        plan_once(server)
    assert "SPECFLEET_LLM_API_KEY" in str(caught.value)
    assert "sk-test-key" not in str(caught.value)


def test_settings_configure_the_client_and_prices() -> None:
    """No base URL means no LLM; prices come from settings as JSON and unknown models cost 0."""
    assert LLMConfig.from_settings(Settings()) is None
    settings = Settings(llm_base_url="http://127.0.0.1:1/v1", llm_prices={"m": (2.0, 1.0, 8.0)})
    config = LLMConfig.from_settings(settings)
    assert config is not None and config.api_key == "not-needed"
    assert estimate_cost(config.prices, "m", 1_000_000, 0, 0) == 2.0
    assert estimate_cost(config.prices, "unknown", 1_000_000, 0, 0) == 0.0


def test_the_planner_and_budget_come_from_settings() -> None:
    """Unset endpoint: no planner; set: a planner that knows every configured secret."""
    from specfleet.agent.budget import Budget
    from specfleet.agent.llm import LLMPlanner

    assert LLMPlanner.from_settings(Settings()) is None
    settings = Settings(
        llm_base_url="http://127.0.0.1:1/v1",
        llm_api_key="sk-configured-key-000",
        gitlab_token="glpat-configured-000000000",
        budget_calls=3,
    )
    planner = LLMPlanner.from_settings(settings)
    assert planner is not None and set(planner.known_secrets) == {
        "sk-configured-key-000",
        "glpat-configured-000000000",
    }
    assert Budget.from_settings(settings).calls == 3
