"""The LLM client: the openai SDK against any OpenAI-compatible endpoint, and the planner on it.

:class:`LLMClient` configures the SDK (base URL, key, organisation, timeout, retries: the SDK
itself retries 429, 408, 409, 5xx and timeouts with exponential backoff and honours
``Retry-After``), asks for structured output by JSON schema and falls back to plain JSON when
the endpoint refuses ``response_format`` (vLLM, llama.cpp and Ollama versions differ), and
returns every call's usage and estimated cost. Failures the planner can turn into an outcome
(a timeout, rate limits that outlast the retries, a 5xx) are values; a misconfigured or
unauthorised endpoint raises :class:`specfleet.core.errors.LLMError`.

:class:`LLMPlanner` turns a prompt into a :class:`agent.plan.Plan`: it redacts secrets from
every message before it leaves the process, parses the answer, and records the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai

from specfleet.agent.budget import CallRecord
from specfleet.agent.plan import PLAN_JSON_SCHEMA, Plan, parse_plan
from specfleet.core.errors import InputError, LLMError
from specfleet.core.metrics import count_llm_call
from specfleet.core.secrets import redact_text
from specfleet.core.settings import Settings

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}
Outcome = Literal["ok", "invalid", "error", "timeout"]
Prices = Mapping[str, tuple[float, float, float]]  # USD per million: input, cached, output


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    api_key: str
    model: str
    organization: str | None = None
    timeout_seconds: float = 120.0
    max_retries: int = 3
    prices: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    json_schema: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig | None:
        """The configured endpoint, or None when none is (deterministic remediators only)."""
        if not settings.llm_base_url:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        return cls(
            base_url=settings.llm_base_url,
            # local servers (vLLM, llama.cpp) take any key, but the SDK insists on one
            api_key=key or "not-needed",
            model=settings.llm_model,
            organization=settings.llm_organization,
            timeout_seconds=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            prices=dict(settings.llm_prices),
            json_schema=settings.llm_json_schema,
        )


@dataclass(frozen=True)
class Completion:
    """One chat completion as the planner needs it: text (or why none), usage, attempts."""

    text: str | None
    outcome: Outcome
    problem: str | None
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    duration_ms: int
    attempts: int
    structured: bool  # answered under the JSON schema (False: plain JSON fallback)


def estimate_cost(prices: Prices, model: str, prompt: int, cached: int, completion: int) -> float:
    """USD for one call from the price table; unknown models cost 0 (pure)."""
    price = prices.get(model)
    if price is None:
        return 0.0
    per_input, per_cached, per_output = price
    uncached = max(prompt - cached, 0)
    return (uncached * per_input + cached * per_cached + completion * per_output) / 1_000_000


class LLMClient:
    """The openai SDK, configured once; thread-safe like the SDK itself."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._attempts = 0
        self._schema_supported = config.json_schema
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [self._count_attempt]})
        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            organization=config.organization,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
            http_client=http_client,
        )

    def _count_attempt(self, _request: Any) -> None:
        self._attempts += 1

    def complete(self, messages: Sequence[Message], schema: dict[str, Any]) -> Completion:
        """One completion; asks for ``schema`` when the endpoint supports it."""
        started = time.monotonic()
        self._attempts = 0
        structured = self._schema_supported
        try:
            try:
                response = self._create(messages, schema if structured else None)
            except (openai.BadRequestError, openai.UnprocessableEntityError):
                if not structured:
                    raise
                # the endpoint does not know response_format json_schema: plain JSON from now on
                self._schema_supported = structured = False
                response = self._create(messages, None)
        except openai.APITimeoutError:
            return self._failed("timeout", "the LLM endpoint timed out", started, structured)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise LLMError(
                f"the LLM endpoint refused the credentials (HTTP {error.status_code}); "
                "check SPECFLEET_LLM_API_KEY and SPECFLEET_LLM_ORGANIZATION"
            ) from error
        except openai.NotFoundError as error:
            raise LLMError(
                f"the LLM endpoint {self.config.base_url} has no model {self.config.model!r} "
                "or no chat completions API (HTTP 404)"
            ) from error
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            raise LLMError(
                f"the LLM endpoint rejected the request (HTTP {error.status_code}): "
                f"{_short(error.message)}"
            ) from error
        except openai.APIStatusError as error:
            return self._failed(
                "error",
                f"the LLM endpoint failed (HTTP {error.status_code}) after "
                f"{self._attempts} attempts: {_short(error.message)}",
                started,
                structured,
            )
        except openai.APIConnectionError as error:
            return self._failed(
                "error",
                f"the LLM endpoint cannot be reached: {_short(str(error))}",
                started,
                structured,
            )
        except (openai.APIError, ValueError) as error:
            # ValueError: a 200 whose body is not JSON (a proxy's HTML page) fails to decode
            return self._failed(
                "error",
                f"the LLM endpoint answered unreadably: {_short(str(error))}",
                started,
                structured,
            )
        return self._completed(response, started, structured)

    def _create(self, messages: Sequence[Message], schema: dict[str, Any] | None) -> Any:
        extra: dict[str, Any] = {}
        if schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "plan", "schema": schema, "strict": True},
            }
        return self._client.chat.completions.create(
            model=self.config.model,
            # no temperature: reasoning models refuse anything but the default, and best-of-N
            # wants the default's variety
            messages=list(messages),  # type: ignore[arg-type]
            **extra,
        )

    def _completed(self, response: Any, started: float, structured: bool) -> Completion:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        choices = getattr(response, "choices", None) or []
        message = choices[0].message if choices else None
        text = getattr(message, "content", None) if message is not None else None
        refusal = getattr(message, "refusal", None) if message is not None else None
        problem = None
        outcome: Outcome = "ok"
        if not isinstance(text, str) or not text.strip():
            outcome = "invalid"
            problem = f"the model refused: {refusal}" if refusal else "the answer was empty"
            text = None
        return Completion(
            text=text,
            outcome=outcome,
            problem=problem,
            prompt_tokens=prompt,
            cached_prompt_tokens=cached,
            completion_tokens=completion,
            cost_usd=estimate_cost(
                self.config.prices, self.config.model, prompt, cached, completion
            ),
            duration_ms=int((time.monotonic() - started) * 1000),
            attempts=self._attempts,
            structured=structured,
        )

    def _failed(
        self, outcome: Outcome, problem: str, started: float, structured: bool
    ) -> Completion:
        return Completion(
            None,
            outcome,
            problem,
            0,
            0,
            0,
            0.0,
            int((time.monotonic() - started) * 1000),
            self._attempts,
            structured,
        )


@dataclass(frozen=True)
class PlannerReply:
    """A plan (or why there is none) and the record of the call that produced it."""

    plan: Plan | None
    problem: str | None
    record: CallRecord
    raw: str | None = None


class LLMPlanner:
    """Prompt in, plan out: secrets redacted before sending, the answer parsed as data."""

    def __init__(self, client: LLMClient, known_secrets: Sequence[str] = ()) -> None:
        self.client = client
        self.known_secrets = tuple(secret for secret in known_secrets if secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMPlanner | None:
        """The configured planner, or None when no endpoint is set (deterministic only)."""
        config = LLMConfig.from_settings(settings)
        if config is None:
            return None
        return cls(LLMClient(config), settings.secret_values())

    @property
    def model(self) -> str:
        return self.client.config.model

    def redact(self, messages: Sequence[Message]) -> list[Message]:
        return [
            {"role": m["role"], "content": redact_text(m["content"], self.known_secrets)}
            for m in messages
        ]

    def plan(
        self,
        messages: Sequence[Message],
        *,
        product_id: str,
        window: str,
        purpose: str,
        evaluation_id: int | None = None,
    ) -> PlannerReply:
        answer = self.answer(
            messages,
            PLAN_JSON_SCHEMA,
            product_id=product_id,
            window=window,
            purpose=purpose,
            evaluation_id=evaluation_id,
        )
        return answer

    def answer(
        self,
        messages: Sequence[Message],
        schema: dict[str, Any],
        *,
        product_id: str,
        window: str,
        purpose: str,
        evaluation_id: int | None = None,
        parse: Callable[[str], Any] | None = None,
    ) -> PlannerReply:
        """One call under ``schema``; the text is parsed by ``parse`` (default: a plan).

        The reply's ``plan`` holds whatever ``parse`` returned; a parse error (an
        :class:`~specfleet.core.errors.InputError`) makes the call ``invalid`` with its message.
        """
        completion = self.client.complete(self.redact(messages), schema)
        parsed: Any = None
        problem = completion.problem
        outcome = completion.outcome
        if completion.text is not None:
            try:
                parsed = (parse or parse_plan)(completion.text)
            except InputError as error:
                problem, outcome = str(error), "invalid"
        record = CallRecord(
            product_id=product_id,
            window=window,
            model=self.model,
            purpose=purpose,
            prompt_tokens=completion.prompt_tokens,
            cached_prompt_tokens=completion.cached_prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_usd=completion.cost_usd,
            duration_ms=completion.duration_ms,
            outcome=outcome,
            attempts=completion.attempts,
            evaluation_id=evaluation_id,
        )
        count_llm_call(
            purpose,
            outcome,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.cached_prompt_tokens,
            completion.cost_usd,
        )
        return PlannerReply(parsed, problem, record, completion.text)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
