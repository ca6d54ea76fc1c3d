"""LLM budgets per product per window, computed from the recorded calls.

Budgets are sums over :class:`core.db.LLMCall` rows, never counters kept in memory, so a task
redelivered after a worker died mid-evaluation sees what the first delivery already spent and
cannot overspend. The recorder is a small Protocol: the database one for the fleet, an
in-memory one for tests and the pure parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from specfleet.core.db import LLMCall, session_scope
from specfleet.core.settings import Settings


@dataclass(frozen=True)
class CallRecord:
    """One LLM request as the budget sees it."""

    product_id: str
    window: str
    model: str
    purpose: str  # plan or repair
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0
    outcome: str = "ok"  # ok, invalid, error, timeout
    attempts: int = 1  # HTTP requests the SDK made (retries on 429/5xx/timeouts)
    evaluation_id: int | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Spent:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Budget:
    """Limits per product per window; zero means nothing may be spent."""

    calls: int
    tokens: int
    cost_usd: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        return cls(settings.budget_calls, settings.budget_tokens, settings.budget_cost_usd)

    def exhausted(self, spent: Spent, next_prompt_tokens: int = 0) -> str | None:
        """Why no further call may be made, or None (pure)."""
        if spent.calls >= self.calls:
            return f"call budget exhausted ({spent.calls} of {self.calls} calls this window)"
        if spent.tokens + next_prompt_tokens > self.tokens:
            return (
                f"token budget exhausted ({spent.tokens} spent, next prompt about "
                f"{next_prompt_tokens}, limit {self.tokens} this window)"
            )
        if spent.cost_usd >= self.cost_usd:
            return (
                f"cost budget exhausted (${spent.cost_usd:.4f} of ${self.cost_usd:.2f} this window)"
            )
        return None


class UsageRecorder(Protocol):
    def spent(self, product_id: str, window: str) -> Spent: ...

    def record(self, call: CallRecord) -> None: ...


@dataclass
class MemoryRecorder:
    """Calls kept in a list: for tests, benchmarks and runs without a database."""

    calls: list[CallRecord] = field(default_factory=list)

    def spent(self, product_id: str, window: str) -> Spent:
        mine = [c for c in self.calls if c.product_id == product_id and c.window == window]
        return Spent(len(mine), sum(c.tokens for c in mine), sum(c.cost_usd for c in mine))

    def record(self, call: CallRecord) -> None:
        self.calls.append(call)


@dataclass
class DatabaseRecorder:
    """Calls as ``llm_call`` rows; the budget is whatever those rows add up to."""

    engine: Engine

    def spent(self, product_id: str, window: str) -> Spent:
        with Session(self.engine) as session:
            row = session.exec(
                select(
                    func.count(col(LLMCall.id)),
                    func.coalesce(
                        func.sum(col(LLMCall.prompt_tokens) + col(LLMCall.completion_tokens)), 0
                    ),
                    func.coalesce(func.sum(col(LLMCall.cost_usd)), 0.0),
                ).where(LLMCall.product_id == product_id, LLMCall.window == window)
            ).one()
        return Spent(int(row[0]), int(row[1]), float(row[2]))

    def record(self, call: CallRecord) -> None:
        with session_scope(self.engine) as session:
            session.add(
                LLMCall(
                    product_id=call.product_id,
                    window=call.window,
                    evaluation_id=call.evaluation_id,
                    model=call.model[:200],
                    purpose=call.purpose,
                    prompt_tokens=call.prompt_tokens,
                    cached_prompt_tokens=call.cached_prompt_tokens,
                    completion_tokens=call.completion_tokens,
                    cost_usd=call.cost_usd,
                    duration_ms=call.duration_ms,
                    outcome=call.outcome,
                )
            )
