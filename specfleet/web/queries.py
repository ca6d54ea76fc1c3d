"""Read models for the console and the API: a few queries per page, whatever the fleet's size.

Each function returns plain frozen dataclasses (rows copied out of their session), so the
templates and the JSON API render the same facts without touching the database again.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock

from sqlalchemy import Engine, func
from sqlalchemy import select as sa_select  # sqlmodel's select stops at four columns
from sqlmodel import Session, col, select

from specfleet.core.db import (
    AmendmentRequest,
    AuditEntry,
    ComplianceRecord,
    Evaluation,
    LLMCall,
    MergeRequest,
    PolicyRuleRecord,
    PolicySetRecord,
    Product,
    Proposal,
    StageResult,
)
from specfleet.core.errors import MergeRequestNotFound, ProductNotFound, SpecfleetError
from specfleet.core.git import MirrorCache, read_blobs
from specfleet.core.spec import Spec, check_spec_bytes
from specfleet.core.windows import weeks_between
from specfleet.policies.compliance import RolloutWeek


@dataclass(frozen=True)
class LastEvaluation:
    id: int
    status: str
    outcome: str | None
    window: str
    trigger: str
    queued_at: dt.datetime
    finished_at: dt.datetime | None
    duration_seconds: float | None

    @property
    def label(self) -> str:
        return self.outcome or self.status


@dataclass(frozen=True)
class Compliance:
    """A product against the current policy set's rules (latest check of each rule)."""

    policy_version: int | None
    passing: int
    failing: int
    unknown: int
    not_applicable: int

    @property
    def label(self) -> str:
        if self.policy_version is None:
            return "no policy set"
        if self.failing:
            return f"{self.failing} failing"
        if self.unknown:
            return f"{self.unknown} unknown"
        return "compliant"


@dataclass(frozen=True)
class ProductSummary:
    id: str
    name: str
    owners: list[str]
    tags: list[str]


@dataclass(frozen=True)
class OpenMergeRequest:
    id: int
    title: str


@dataclass(frozen=True)
class FleetRow:
    product: ProductSummary
    last: LastEvaluation | None
    open_mr: OpenMergeRequest | None
    compliance: Compliance

    @property
    def outcome(self) -> str:
        return self.last.label if self.last else "never"


@dataclass(frozen=True)
class Fleet:
    rows: list[FleetRow]
    total: int
    counts: dict[str, int]  # outcome -> products
    open_merge_requests: int
    failing_compliance: int
    owners: list[str]
    tags: list[str]
    outcomes: list[str]
    policy_version: int | None


def latest_policy_version(session: Session) -> int | None:
    return session.exec(
        select(PolicySetRecord.version).order_by(col(PolicySetRecord.version).desc()).limit(1)
    ).first()


def _rule_ids(session: Session, version: int | None) -> list[str]:
    if version is None:
        return []
    return list(
        session.exec(
            select(PolicyRuleRecord.rule_id)
            .where(PolicyRuleRecord.policy_set_version == version)
            .order_by(col(PolicyRuleRecord.rule_id))
        ).all()
    )


class ComplianceCache:
    """Answers derived from the compliance history, reused until a new check is appended.

    The history is append-only (rows are never changed or deleted), so its largest id says
    whether anything changed since an answer was computed: one indexed lookup per page view
    instead of a scan of every check ever recorded.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[object, ...], object] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[object, ...]) -> object | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[object, ...], value: object) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


COMPLIANCE_CACHE = ComplianceCache()


def _history_mark(session: Session) -> tuple[str, int]:
    """Which database, and how far its compliance history has grown."""
    database = str(session.get_bind().engine.url)
    return database, int(session.exec(select(func.max(ComplianceRecord.id))).one() or 0)


def latest_statuses(
    session: Session, rule_ids: list[str], product_ids: list[str] | None = None
) -> dict[tuple[str, str], str]:
    """(product, rule) -> the status of the latest check, for the given rules."""
    if not rule_ids:
        return {}
    if product_ids is None:
        key: tuple[object, ...] = ("statuses", _history_mark(session), tuple(rule_ids))
        cached = COMPLIANCE_CACHE.get(key)
        if cached is None:
            cached = _latest_statuses(session, rule_ids, None)
            COMPLIANCE_CACHE.put(key, cached)
        return cached  # type: ignore[return-value]
    return _latest_statuses(session, rule_ids, product_ids)


def _latest_statuses(
    session: Session, rule_ids: list[str], product_ids: list[str] | None
) -> dict[tuple[str, str], str]:
    latest = (
        select(func.max(ComplianceRecord.id).label("id"))
        .where(col(ComplianceRecord.rule_id).in_(rule_ids))
        .group_by(col(ComplianceRecord.product_id), col(ComplianceRecord.rule_id))
    )
    if product_ids is not None:
        latest = latest.where(col(ComplianceRecord.product_id).in_(product_ids))
    rows = session.exec(
        select(
            ComplianceRecord.product_id, ComplianceRecord.rule_id, ComplianceRecord.status
        ).where(col(ComplianceRecord.id).in_(latest.subquery().select()))
    ).all()
    return {(product, rule): status for product, rule, status in rows}


def _last_evaluations(session: Session) -> dict[str, LastEvaluation]:
    """Each product's newest evaluation, read as columns (no ORM rows: a fleet has many)."""
    latest = select(func.max(Evaluation.id)).group_by(col(Evaluation.product_id))
    rows = session.execute(
        sa_select(
            col(Evaluation.id),
            col(Evaluation.product_id),
            col(Evaluation.status),
            col(Evaluation.outcome),
            col(Evaluation.window),
            col(Evaluation.trigger),
            col(Evaluation.queued_at),
            col(Evaluation.started_at),
            col(Evaluation.finished_at),
        ).where(col(Evaluation.id).in_(latest.subquery().select()))
    ).all()
    found = {}
    for row_id, product_id, status, outcome, window, trigger, queued, started, finished in rows:
        took = (finished - started).total_seconds() if started and finished else None
        found[product_id] = LastEvaluation(
            row_id, status, outcome, window, trigger, queued, finished, took
        )
    return found


def compliance_of(
    statuses: dict[tuple[str, str], str], product_id: str, rule_ids: list[str], version: int | None
) -> Compliance:
    counted = [statuses.get((product_id, rule), "unknown") for rule in rule_ids]
    return Compliance(
        version,
        counted.count("pass"),
        counted.count("fail"),
        counted.count("unknown"),
        counted.count("not-applicable"),
    )


def fleet(
    engine: Engine,
    owner: str | None = None,
    tag: str | None = None,
    outcome: str | None = None,
) -> Fleet:
    """Every active product with its last evaluation, open merge request and compliance."""
    with Session(engine) as session:
        products = [
            ProductSummary(product_id, name, list(owners or []), list(tags or []))
            for product_id, name, owners, tags in session.exec(
                select(Product.id, Product.name, Product.owners, Product.tags)
                .where(col(Product.active))
                .order_by(col(Product.id))
            )
        ]
        evaluations = _last_evaluations(session)
        open_mrs: dict[str, OpenMergeRequest] = {}
        for row_id, product_id, title in session.exec(
            select(MergeRequest.id, MergeRequest.product_id, MergeRequest.title)
            .where(MergeRequest.state == "open")
            .order_by(col(MergeRequest.id))
        ):
            open_mrs[product_id] = OpenMergeRequest(row_id or 0, title)
        version = latest_policy_version(session)
        rule_ids = _rule_ids(session, version)
        statuses = latest_statuses(session, rule_ids)
    rows = [
        FleetRow(
            product,
            evaluations.get(product.id),
            open_mrs.get(product.id),
            compliance_of(statuses, product.id, rule_ids, version),
        )
        for product in products
    ]
    owners = sorted({email for row in rows for email in row.product.owners})
    tags = sorted({name for row in rows for name in row.product.tags})
    outcomes = sorted({row.outcome for row in rows})
    if owner:
        rows = [row for row in rows if owner in row.product.owners]
    if tag:
        rows = [row for row in rows if tag in row.product.tags]
    if outcome:
        rows = [row for row in rows if row.outcome == outcome]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return Fleet(
        rows=rows,
        total=len(rows),
        counts=dict(sorted(counts.items())),
        open_merge_requests=sum(1 for row in rows if row.open_mr is not None),
        failing_compliance=sum(1 for row in rows if row.compliance.failing),
        owners=owners,
        tags=tags,
        outcomes=outcomes,
        policy_version=version,
    )


# -- one product ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecView:
    spec: Spec | None
    problem: str | None = None


@dataclass(frozen=True)
class ProductDetail:
    product: Product
    spec: SpecView
    evaluations: list[Evaluation]
    merge_requests: list[MergeRequest]
    history: list[AuditEntry]
    compliance: dict[str, str]  # rule -> latest status
    policy_version: int | None
    amendments: list[AmendmentRequest] = field(default_factory=list)  # newest first


class SpecCache:
    """Parsed specs by git blob id: a blob never changes, so neither does its parse."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, SpecView] = OrderedDict()
        self._lock = Lock()

    def get(self, mirrors: MirrorCache, product: Product) -> SpecView:
        if not product.spec_hash:
            return SpecView(None, "the spec has not been read yet")
        with self._lock:
            cached = self._items.get(product.spec_hash)
        if cached is not None:
            return cached
        view = _read_spec(mirrors, product)
        with self._lock:
            self._items[product.spec_hash] = view
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return view


def _read_spec(mirrors: MirrorCache, product: Product) -> SpecView:
    assert product.spec_hash is not None
    mirror = mirrors.path_for(product.repo_url)
    try:
        if not (mirror / "HEAD").exists():
            mirror = mirrors.fetch(product.repo_url)
        data = read_blobs(mirror, [product.spec_hash])[product.spec_hash]
    except SpecfleetError as error:
        return SpecView(None, f"the spec cannot be read from the repository: {error}")
    checked = check_spec_bytes(data, f"{product.id}:{product.spec_path}")
    if checked.spec is None:
        problems = "; ".join(problem.render() for problem in checked.problems[:3])
        return SpecView(None, f"the registered spec is invalid: {problems}")
    return SpecView(checked.spec)


def product_detail(
    engine: Engine, mirrors: MirrorCache, specs: SpecCache, product_id: str
) -> ProductDetail:
    # imported here: the worker package pulls in the pipeline, which the other pages never need
    from specfleet.worker.pipeline.amend import amendment_requests

    with Session(engine) as session:
        product = session.get(Product, product_id)
        if product is None:
            raise ProductNotFound(f"no product {product_id!r} is registered")
        evaluations = list(
            session.exec(
                select(Evaluation)
                .where(Evaluation.product_id == product_id)
                .order_by(col(Evaluation.id).desc())
                .limit(50)
            )
        )
        merge_requests = list(
            session.exec(
                select(MergeRequest)
                .where(MergeRequest.product_id == product_id)
                .order_by(col(MergeRequest.id).desc())
                .limit(50)
            )
        )
        history = list(
            session.exec(
                select(AuditEntry)
                .where(AuditEntry.subject_type == "product", AuditEntry.subject_id == product_id)
                .order_by(col(AuditEntry.id).desc())
                .limit(20)
            )
        )
        version = latest_policy_version(session)
        rule_ids = _rule_ids(session, version)
        statuses = latest_statuses(session, rule_ids, [product_id])
    return ProductDetail(
        product,
        specs.get(mirrors, product),
        evaluations,
        merge_requests,
        history,
        {rule: statuses.get((product_id, rule), "unknown") for rule in rule_ids},
        version,
        amendment_requests(engine, product_id),
    )


# -- one evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMUsage:
    calls: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class EvaluationDetail:
    evaluation: Evaluation
    product: Product | None
    stages: list[StageResult]
    proposal: Proposal | None
    merge_request: MergeRequest | None
    llm_calls: list[LLMCall]
    usage: LLMUsage = field(default_factory=LLMUsage)


def evaluation_detail(engine: Engine, evaluation_id: int) -> EvaluationDetail | None:
    with Session(engine) as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            return None
        stages = list(
            session.exec(
                select(StageResult)
                .where(StageResult.evaluation_id == evaluation_id)
                .order_by(col(StageResult.started_at), col(StageResult.id))
            )
        )
        proposal = session.exec(
            select(Proposal)
            .where(Proposal.evaluation_id == evaluation_id)
            .order_by(col(Proposal.id).desc())
        ).first()
        merge_request = None
        if proposal is not None:
            merge_request = session.exec(
                select(MergeRequest)
                .where(MergeRequest.proposal_id == proposal.id)
                .order_by(col(MergeRequest.id).desc())
            ).first()
        calls = list(
            session.exec(
                select(LLMCall)
                .where(LLMCall.evaluation_id == evaluation_id)
                .order_by(col(LLMCall.id))
            )
        )
        product = session.get(Product, evaluation.product_id)
    usage = LLMUsage(
        len(calls),
        sum(call.prompt_tokens for call in calls),
        sum(call.cached_prompt_tokens for call in calls),
        sum(call.completion_tokens for call in calls),
        round(sum(call.cost_usd for call in calls), 6),
    )
    return EvaluationDetail(evaluation, product, stages, proposal, merge_request, calls, usage)


def list_evaluations(
    engine: Engine, product_id: str | None = None, limit: int = 100
) -> list[Evaluation]:
    with Session(engine) as session:
        query = select(Evaluation).order_by(col(Evaluation.id).desc()).limit(limit)
        if product_id:
            query = query.where(Evaluation.product_id == product_id)
        return list(session.exec(query))


# -- merge requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeRequestDetail:
    merge_request: MergeRequest
    product: Product | None
    activity: list[AuditEntry]
    evaluation_id: int | None


def merge_request_detail(engine: Engine, merge_request_id: int) -> MergeRequestDetail:
    with Session(engine) as session:
        row = session.get(MergeRequest, merge_request_id)
        if row is None:
            raise MergeRequestNotFound(f"no merge request {merge_request_id}")
        product = session.get(Product, row.product_id)
        activity = list(
            session.exec(
                select(AuditEntry)
                .where(
                    AuditEntry.subject_type == "merge_request",
                    AuditEntry.subject_id == str(merge_request_id),
                )
                .order_by(col(AuditEntry.id))
                .limit(200)
            )
        )
        evaluation_id = None
        if row.proposal_id is not None:
            proposal = session.get(Proposal, row.proposal_id)
            evaluation_id = proposal.evaluation_id if proposal else None
    return MergeRequestDetail(row, product, activity, evaluation_id)


def list_merge_requests(
    engine: Engine, product_id: str | None = None, state: str | None = None, limit: int = 200
) -> list[MergeRequest]:
    with Session(engine) as session:
        query = select(MergeRequest).order_by(col(MergeRequest.id).desc()).limit(limit)
        if product_id:
            query = query.where(MergeRequest.product_id == product_id)
        if state:
            query = query.where(MergeRequest.state == state)
        return list(session.exec(query))


def rollout_weeks(
    engine: Engine, rule_id: str, since: dt.date, until: dt.date
) -> list[RolloutWeek]:
    """:func:`specfleet.policies.compliance.rollout`, computed from column tuples (not ORM rows, ten
    times cheaper on a fleet's history) and reused until a new check is appended."""
    with Session(engine) as session:
        key: tuple[object, ...] = ("rollout", _history_mark(session), rule_id, since, until)
        cached = COMPLIANCE_CACHE.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        rows = session.exec(
            select(ComplianceRecord.product_id, ComplianceRecord.status, ComplianceRecord.window)
            .where(ComplianceRecord.rule_id == rule_id)
            .order_by(col(ComplianceRecord.checked_at), col(ComplianceRecord.id))
        ).all()
    by_week: dict[str, list[tuple[str, str]]] = {}
    for product_id, status, window in rows:
        by_week.setdefault(window, []).append((product_id, status))
    state: dict[str, str] = {}
    weeks = []
    for window in weeks_between(since, until):
        for product_id, status in by_week.get(window, []):
            if status != "not-applicable":
                state[product_id] = status
            else:
                state.pop(product_id, None)
        statuses = list(state.values())
        weeks.append(
            RolloutWeek(
                window,
                statuses.count("pass"),
                statuses.count("fail"),
                statuses.count("unknown"),
                len(by_week.get(window, [])),
            )
        )
    COMPLIANCE_CACHE.put(key, weeks)
    return weeks
