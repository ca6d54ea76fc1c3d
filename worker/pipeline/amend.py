"""Amendment requests in the fleet: recorded, drafted into the spec, implemented, answered.

``specfleet amend`` and the web console's form call :func:`request_amendment`: it records the
request (who, when, what) and queues an evaluation with trigger ``amendment`` for it, in one
transaction. The pipeline (``run.py``) then drafts the spec change with the LLM
(:func:`draft_spec`; conflicts end the evaluation with outcome ``conflict`` and nothing else
happens), implements the whole amended spec with the agent's loop, verifies it (every test the
requirements name must pass) and publishes on a branch of its own, so the weekly merge request
is never overwritten by an amendment or the other way round. :func:`record_amendment_outcome`
writes where the request got to, which is what the owner sees.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from specfleet.agent.amend import (
    DRAFT_JSON_SCHEMA,
    AmendmentAsk,
    CheckedDraft,
    Conflict,
    DraftInvalid,
    check_draft,
    draft_messages,
    parse_draft,
)
from specfleet.agent.amend_text import amend_spec_text
from specfleet.agent.budget import DatabaseRecorder
from specfleet.agent.llm import Message
from specfleet.core.db import AmendmentRequest, AuditEntry, PolicySetRecord, Product, ledger
from specfleet.core.db.engine import session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import InputError, ProductNotFound
from specfleet.core.spec import Spec
from specfleet.core.spec.loader import check_spec_bytes

BRANCH_PREFIX = "specfleet/amend-"


@dataclass(frozen=True)
class AmendmentQueued:
    request_id: int
    evaluation_id: int


def amendment_branch(request_id: int) -> str:
    return f"{BRANCH_PREFIX}{request_id}"


def request_amendment(
    engine: Engine, product_id: str, ask: AmendmentAsk, actor: str, window: str
) -> AmendmentQueued:
    """Record the request and queue its evaluation (one transaction: both or neither)."""
    with session_scope(engine) as session:
        product = session.get(Product, product_id)
        if product is None or not product.active:
            raise ProductNotFound(f"no product {product_id!r} is registered")
        version = session.exec(
            select(PolicySetRecord.version).order_by(col(PolicySetRecord.version).desc()).limit(1)
        ).first()
        evaluation_id = ledger.queue(session, product_id, window, "amendment", version)
        request = AmendmentRequest(
            product_id=product_id,
            requested_by=actor,
            requirement=ask.requirement.strip(),
            why=(ask.why or "").strip() or None,
            state="queued",
            evaluation_id=evaluation_id,
        )
        session.add(request)
        session.flush()
        assert request.id is not None
        session.add(
            AuditEntry(
                actor=actor,
                action="amendment.request",
                subject_type="product",
                subject_id=product_id,
                detail={"request": request.id, "evaluation": evaluation_id},
            )
        )
        return AmendmentQueued(request.id, evaluation_id)


def amendment_for(engine: Engine, evaluation_id: int) -> AmendmentRequest | None:
    with session_scope(engine) as session:
        row = session.exec(
            select(AmendmentRequest).where(AmendmentRequest.evaluation_id == evaluation_id)
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def amendment_requests(engine: Engine, product_id: str, limit: int = 50) -> list[AmendmentRequest]:
    with session_scope(engine) as session:
        rows = session.exec(
            select(AmendmentRequest)
            .where(AmendmentRequest.product_id == product_id)
            .order_by(col(AmendmentRequest.id).desc())
            .limit(limit)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def record_amendment_outcome(
    engine: Engine, evaluation_id: int, outcome: str, reason: str, summary: dict[str, Any]
) -> None:
    """Where the request behind ``evaluation_id`` got to (no-op for other evaluations)."""
    # "unchanged": the merge request carrying this very proposal is already open
    state = "proposed" if outcome == "unchanged" else outcome
    with session_scope(engine) as session:
        row = session.exec(
            select(AmendmentRequest).where(AmendmentRequest.evaluation_id == evaluation_id)
        ).first()
        if row is None:
            return
        row.state = state
        row.outcome_detail = reason[:4000] if reason else None
        conflict = summary.get("conflict")
        row.conflict = conflict if isinstance(conflict, dict) else None
        amendment = summary.get("amendment_id")
        row.amendment_id = amendment if isinstance(amendment, str) else row.amendment_id
        url = summary.get("merge_request")
        row.merge_request_url = url if isinstance(url, str) else None
        row.updated_at = utcnow()
        session.add(row)


# --- drafting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmendedSpec:
    """A checked draft written into the spec: what the implementation step works from."""

    ask: AmendmentAsk
    checked: CheckedDraft
    spec: Spec  # the amended spec
    text: str  # its YAML
    diff: str  # unified diff of the spec file, old -> new
    requested_by: str

    @property
    def required_tests(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for r in self.spec.requirements for t in r.tests))

    @property
    def new_test_files(self) -> tuple[str, ...]:
        files = (
            test.split("::", 1)[0]
            for requirement in self.checked.draft.requirements
            for test in requirement.tests
        )
        return tuple(dict.fromkeys(files))


@dataclass(frozen=True)
class DraftResult:
    answer: AmendedSpec | Conflict | None  # None: no usable draft (see ``problem``)
    problem: str | None
    calls: int
    tokens: int
    cost_usd: float


def draft_spec(
    planning: Any,  # specfleet.worker.pipeline.llm_plan.LLMPlanning
    spec: Spec,
    spec_text: str,
    spec_path: str,
    ask: AmendmentAsk,
    requested_by: str,
    *,
    window: str,
    evaluation_id: int,
    today: dt.date,
    attempts: int = 2,
) -> DraftResult:
    """Ask the model for the spec change, judge it, and write it (a second try on bad drafts)."""
    recorder = DatabaseRecorder(planning.engine)
    messages: list[Message] = list(draft_messages(spec_text, ask, planning.known_secrets))
    calls = tokens = 0
    cost = 0.0
    problem: str | None = None
    for _ in range(attempts):
        stop = planning.budget.exhausted(recorder.spent(spec.id, window))
        if stop:
            return DraftResult(None, stop, calls, tokens, cost)
        reply = planning.planner.answer(
            messages,
            DRAFT_JSON_SCHEMA,
            product_id=spec.id,
            window=window,
            purpose="amend",
            evaluation_id=evaluation_id,
            parse=parse_draft,
        )
        recorder.record(reply.record)
        calls += 1
        tokens += reply.record.tokens
        cost += reply.record.cost_usd
        if reply.record.outcome in ("timeout", "error"):
            failure = reply.problem or "the LLM endpoint failed"
            return DraftResult(None, failure, calls, tokens, cost)
        try:
            if reply.plan is None:
                raise DraftInvalid(reply.problem or "no draft")
            judged = check_draft(spec, ask, reply.plan)
            if isinstance(judged, Conflict):
                return DraftResult(judged, None, calls, tokens, cost)
            text = amend_spec_text(spec_text, judged, ask, today)
        except InputError as error:
            problem = str(error)
            messages = [
                *messages,
                {"role": "assistant", "content": reply.raw or "(no answer)"},
                {"role": "user", "content": f"The draft cannot be used: {problem}. Answer again."},
            ]
            continue
        checked = check_spec_bytes(text.encode(), spec_path)
        assert checked.spec is not None  # amend_spec_text validated it
        diff = "".join(
            difflib.unified_diff(
                spec_text.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"a/{spec_path}",
                tofile=f"b/{spec_path}",
            )
        )
        amended = AmendedSpec(ask, judged, checked.spec, text, diff, requested_by)
        return DraftResult(amended, None, calls, tokens, cost)
    return DraftResult(None, f"no usable spec draft: {problem}", calls, tokens, cost)


def amendment_title(amended: AmendedSpec) -> str:
    request = " ".join(amended.ask.requirement.split())
    title = f"specfleet: amendment {amended.checked.amendment_id}: {request}"
    return title if len(title) <= 200 else title[:199] + "…"
