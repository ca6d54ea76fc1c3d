"""The JSON API under /api/v1: what the CLI does, with the console's roles (bearer tokens).

Errors are ``{"error": <kind>, "message": <text>}`` (plus ``problems`` for an invalid spec)
with 400 bad input, 401 no or bad token, 403 role or ownership, 404 unknown id, 409 refused
by state or conflict, 422 invalid spec or request.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from pydantic import BaseModel, Field
from sqlmodel import Session

from specfleet.core.db import Evaluation, MergeRequest, Product
from specfleet.core.errors import ImportFileError, SpecMissing
from specfleet.core.registry import get_product, list_products
from specfleet.policies.diff import diff_rules
from specfleet.policies.store import list_policy_sets
from specfleet.web.actions import (
    act_on_merge_request,
    bundled_packs,
    import_products,
    make_registration,
    onboard_product,
    publish_pack,
    register_product,
    remove_product,
    request_evaluation,
)
from specfleet.web.auth import Identity
from specfleet.web.deps import MAX_ID, NotFound, RowId, api_identity, web
from specfleet.web.queries import (
    evaluation_detail,
    latest_statuses,
    list_evaluations,
    list_merge_requests,
    merge_request_detail,
)
from specfleet.web.routers.policies import policy_set

Caller = Annotated[Identity, Depends(api_identity)]
Version = Annotated[int, Query(ge=1, le=MAX_ID)]


class ErrorOut(BaseModel):
    error: str
    message: str
    problems: list[str] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The input cannot be used."},
    401: {"model": ErrorOut, "description": "No valid bearer token."},
    403: {"model": ErrorOut, "description": "The role or ownership does not allow it."},
    404: {"model": ErrorOut, "description": "No such object."},
    409: {"model": ErrorOut, "description": "Refused by the object's state."},
    422: {"model": ErrorOut, "description": "Invalid request or spec."},
}

router = APIRouter(responses=ERRORS)


class ProductOut(BaseModel):
    id: str
    name: str
    repo_url: str
    branch: str
    spec_path: str
    forge: str
    forge_project: str | None
    owners: list[str]
    tags: list[str]
    runtime: str | None
    spec_commit: str | None
    active: bool
    registered_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: Product) -> ProductOut:
        return cls.model_validate(row, from_attributes=True)


class RegistrationIn(BaseModel):
    repo: str = Field(min_length=1, max_length=1000)
    branch: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Default: the repository's default branch.",
    )
    spec: str = Field(default="dataproduct.yaml", min_length=1, max_length=500)
    forge: Literal["local", "gitlab", "github"] = "local"
    project: str | None = Field(default=None, max_length=255)
    owners: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)
    onboard: bool = Field(
        default=False,
        description="No spec on the branch of a dbt project: register it from a drafted spec "
        "and open an onboarding merge request carrying the draft.",
    )


class RegistrationOut(BaseModel):
    product_id: str
    status: str  # added, updated, reactivated, unchanged, or onboarding
    changed_fields: list[str]
    merge_request: str | None = None  # the onboarding merge request's address


class RemovedOut(BaseModel):
    product_id: str
    removed: bool


class ImportFailureOut(BaseModel):
    row: str
    reason: str


class ImportOut(BaseModel):
    results: list[RegistrationOut]
    failed: list[ImportFailureOut]


class StageOut(BaseModel):
    stage: str
    outcome: str
    started_at: dt.datetime
    duration_ms: int


class LLMUsageOut(BaseModel):
    calls: int
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class EvaluationOut(BaseModel):
    id: int
    product_id: str
    window: str
    trigger: str
    status: str
    outcome: str | None
    policy_set_version: int | None
    queued_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None

    @classmethod
    def of(cls, row: Evaluation) -> EvaluationOut:
        return cls.model_validate(row, from_attributes=True)


class EvaluationDetailOut(EvaluationOut):
    stages: list[StageOut]
    merge_request_id: int | None
    llm_usage: LLMUsageOut
    # why the outcome is what it is, what the owner can do, and the verification report
    # (markdown) it rests on: a needs-human evaluation has no merge request to carry them
    reason: str | None = None
    action: str | None = None
    verification: str | None = None


class QueuedOut(BaseModel):
    evaluation_id: int


class MergeRequestOut(BaseModel):
    id: int
    product_id: str
    forge: str
    url: str | None
    title: str
    state: str
    draft: bool
    branch: str
    target_branch: str
    head_commit: str | None
    labels: list[str]
    approvals: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    merged_at: dt.datetime | None

    @classmethod
    def of(cls, row: MergeRequest) -> MergeRequestOut:
        return cls.model_validate(row, from_attributes=True)


class MergeRequestDetailOut(MergeRequestOut):
    description: str
    evaluation_id: int | None


class RuleOut(BaseModel):
    id: str
    title: str
    kind: str
    severity: str
    effective: dt.date
    why: str


class PolicySetOut(BaseModel):
    version: int
    content_hash: str
    message: str
    published_by: str
    published_at: dt.datetime
    rules: int


class PolicySetDetailOut(PolicySetOut):
    rule_list: list[RuleOut]


class FieldChangeOut(BaseModel):
    path: str
    old: Any
    new: Any


class RuleChangeOut(BaseModel):
    rule_id: str
    fields: list[FieldChangeOut]


class PolicyDiffOut(BaseModel):
    old: int
    new: int
    added: list[str]
    removed: list[str]
    changed: list[RuleChangeOut]


class PublishIn(BaseModel):
    pack: str = Field(
        min_length=1,
        max_length=1000,
        description="A bundled pack's name (e.g. v2) or an absolute path to a pack folder.",
    )
    message: str = Field(min_length=1, max_length=2000)


class PublishOut(BaseModel):
    version: int
    created: bool
    added: list[str]
    changed: list[str]
    removed: list[str]
    affected_products: list[str]


class ComplianceOut(BaseModel):
    policy_set_version: int | None
    rules: list[str]
    products: dict[str, dict[str, str]]  # product -> rule -> status


class MeOut(BaseModel):
    name: str
    role: str
    emails: list[str]


# -- who am I ------------------------------------------------------------------------------


@router.get("/me", response_model=MeOut, tags=["accounts"])
def me(identity: Caller) -> MeOut:
    """The account the bearer token belongs to."""
    return MeOut(name=identity.name, role=identity.role, emails=list(identity.emails))


# -- products ------------------------------------------------------------------------------


@router.get("/products", response_model=list[ProductOut], tags=["products"])
def products(
    request: Request,
    identity: Caller,
    owner: Annotated[str | None, Query(max_length=254)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    include_removed: bool = False,
) -> list[ProductOut]:
    """Registered products (active ones unless include_removed)."""
    rows = list_products(web(request).engine, include_removed, owner or None, tag or None)
    return [ProductOut.of(row) for row in rows]


@router.get("/products/{product_id}", response_model=ProductOut, tags=["products"])
def product(request: Request, identity: Caller, product_id: str) -> ProductOut:
    """One product's registration."""
    return ProductOut.of(get_product(web(request).engine, product_id))


@router.post("/products", response_model=RegistrationOut, status_code=201, tags=["products"])
def register(request: Request, identity: Caller, body: RegistrationIn) -> RegistrationOut:
    """Register a product from its repository (platform role); its spec must be valid."""
    registration = make_registration(
        repo=body.repo,
        **({"branch": body.branch} if body.branch else {}),
        spec=body.spec,
        forge=body.forge,
        project=body.project,
        owners=tuple(body.owners),
        tags=tuple(body.tags),
    )
    try:
        result = register_product(web(request), identity, registration)
    except SpecMissing:
        if not body.onboard:
            raise
        onboarding = onboard_product(web(request), identity, registration)
        return RegistrationOut(
            product_id=onboarding.product_id,
            status="onboarding",
            changed_fields=[],
            merge_request=onboarding.url,
        )
    return RegistrationOut(
        product_id=result.product_id,
        status=result.status,
        changed_fields=list(result.changed_fields),
    )


@router.post("/products/import", response_model=ImportOut, tags=["products"])
async def import_file(
    request: Request, identity: Caller, file: Annotated[UploadFile, File()]
) -> ImportOut:
    """Register every row of a YAML or CSV file (platform role); bad rows are reported."""
    if not file.filename:
        raise ImportFileError("the upload has no file name (.csv, .yaml or .yml)")
    report = import_products(web(request), identity, file.filename, await file.read())
    return ImportOut(
        results=[
            RegistrationOut(
                product_id=item.product_id,
                status=item.status,
                changed_fields=list(item.changed_fields),
            )
            for item in report.results
        ],
        failed=[ImportFailureOut(row=item.label, reason=item.reason) for item in report.failed],
    )


@router.delete("/products/{product_id}", response_model=RemovedOut, tags=["products"])
def remove(request: Request, identity: Caller, product_id: str) -> RemovedOut:
    """Stop evaluating a product (platform role); its history is kept."""
    return RemovedOut(
        product_id=product_id, removed=remove_product(web(request), identity, product_id)
    )


@router.post(
    "/products/{product_id}/evaluations",
    response_model=QueuedOut,
    status_code=202,
    tags=["evaluations"],
)
def evaluate(request: Request, identity: Caller, product_id: str) -> QueuedOut:
    """Queue a manual evaluation this week (platform, or an owner of the product)."""
    return QueuedOut(evaluation_id=request_evaluation(web(request), identity, product_id))


# -- evaluations ---------------------------------------------------------------------------


@router.get("/evaluations", response_model=list[EvaluationOut], tags=["evaluations"])
def evaluations(
    request: Request,
    identity: Caller,
    product: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EvaluationOut]:
    """Evaluations, newest first."""
    rows = list_evaluations(web(request).engine, product or None, limit)
    return [EvaluationOut.of(row) for row in rows]


@router.get(
    "/evaluations/{evaluation_id}", response_model=EvaluationDetailOut, tags=["evaluations"]
)
def evaluation(request: Request, identity: Caller, evaluation_id: RowId) -> EvaluationDetailOut:
    """One evaluation: its stages with timings, its merge request and LLM usage."""
    detail = evaluation_detail(web(request).engine, evaluation_id)
    if detail is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    return EvaluationDetailOut(
        **EvaluationOut.of(detail.evaluation).model_dump(),
        stages=[
            StageOut(
                stage=stage.stage,
                outcome=stage.outcome,
                started_at=stage.started_at,
                duration_ms=stage.duration_ms,
            )
            for stage in detail.stages
        ],
        merge_request_id=detail.merge_request.id if detail.merge_request else None,
        llm_usage=LLMUsageOut(**vars(detail.usage)),
        **_summary_texts(detail.evaluation.summary),
    )


def _summary_texts(summary: dict[str, Any] | None) -> dict[str, str | None]:
    values = summary or {}
    return {
        key: str(values[key]) if values.get(key) else None
        for key in ("reason", "action", "verification")
    }


# -- merge requests ------------------------------------------------------------------------


@router.get("/merge-requests", response_model=list[MergeRequestOut], tags=["merge requests"])
def merge_requests(
    request: Request,
    identity: Caller,
    product: Annotated[str | None, Query(max_length=64)] = None,
    state: Literal["open", "merged", "closed", "all"] = "open",
) -> list[MergeRequestOut]:
    """Merge requests, newest first."""
    rows = list_merge_requests(
        web(request).engine, product or None, None if state == "all" else state
    )
    return [MergeRequestOut.of(row) for row in rows]


@router.get(
    "/merge-requests/{merge_request_id}",
    response_model=MergeRequestDetailOut,
    tags=["merge requests"],
)
def merge_request(
    request: Request, identity: Caller, merge_request_id: RowId
) -> MergeRequestDetailOut:
    """One merge request with its description (the verification report)."""
    detail = merge_request_detail(web(request).engine, merge_request_id)
    return MergeRequestDetailOut(
        **MergeRequestOut.of(detail.merge_request).model_dump(),
        description=detail.merge_request.description,
        evaluation_id=detail.evaluation_id,
    )


def _act(
    request: Request,
    identity: Identity,
    merge_request_id: int,
    action: Literal["approve", "merge", "close"],
) -> MergeRequestOut:
    act_on_merge_request(web(request), identity, merge_request_id, action)
    return MergeRequestOut.of(
        merge_request_detail(web(request).engine, merge_request_id).merge_request
    )


@router.post(
    "/merge-requests/{merge_request_id}/approve",
    response_model=MergeRequestOut,
    tags=["merge requests"],
)
def approve(request: Request, identity: Caller, merge_request_id: RowId) -> MergeRequestOut:
    """Approve (an owner of the product; local forge)."""
    return _act(request, identity, merge_request_id, "approve")


@router.post(
    "/merge-requests/{merge_request_id}/merge",
    response_model=MergeRequestOut,
    tags=["merge requests"],
)
def merge(request: Request, identity: Caller, merge_request_id: RowId) -> MergeRequestOut:
    """Merge an approved merge request (an owner of the product; local forge)."""
    return _act(request, identity, merge_request_id, "merge")


@router.post(
    "/merge-requests/{merge_request_id}/close",
    response_model=MergeRequestOut,
    tags=["merge requests"],
)
def close(request: Request, identity: Caller, merge_request_id: RowId) -> MergeRequestOut:
    """Close without merging (an owner of the product); the change is not proposed again."""
    return _act(request, identity, merge_request_id, "close")


# -- policies ------------------------------------------------------------------------------


@router.get("/policies", response_model=list[PolicySetOut], tags=["policies"])
def policies(request: Request, identity: Caller) -> list[PolicySetOut]:
    """Every published policy set, newest first."""
    return [
        PolicySetOut(
            version=record.version,
            content_hash=record.content_hash,
            message=record.message,
            published_by=record.published_by,
            published_at=record.published_at,
            rules=count,
        )
        for record, count in list_policy_sets(web(request).engine)
    ]


@router.get("/policies/diff", response_model=PolicyDiffOut, tags=["policies"])
def policy_diff(request: Request, identity: Caller, old: Version, new: Version) -> PolicyDiffOut:
    """Rules added, removed and changed (field by field) between two versions."""
    before, after = policy_set(web(request), old), policy_set(web(request), new)
    assert before is not None and after is not None
    changes = diff_rules(before.rules, after.rules)
    return PolicyDiffOut(
        old=old,
        new=new,
        added=[rule.id for rule in changes.added],
        removed=[rule.id for rule in changes.removed],
        changed=[
            RuleChangeOut(
                rule_id=change.rule_id,
                fields=[
                    FieldChangeOut(path=item.path, old=item.old, new=item.new)
                    for item in change.fields
                ],
            )
            for change in changes.changed
        ],
    )


@router.get("/policies/{version}", response_model=PolicySetDetailOut, tags=["policies"])
def policy(request: Request, identity: Caller, version: RowId) -> PolicySetDetailOut:
    """One policy set with its rules."""
    chosen = policy_set(web(request), version)
    assert chosen is not None
    return PolicySetDetailOut(
        version=chosen.version,
        content_hash=chosen.content_hash,
        message=chosen.message,
        published_by=chosen.published_by,
        published_at=chosen.published_at,
        rules=len(chosen.rules),
        rule_list=[
            RuleOut(
                id=rule.id,
                title=rule.title,
                kind=rule.kind,
                severity=rule.severity,
                effective=rule.effective,
                why=rule.why,
            )
            for rule in chosen.rules
        ],
    )


@router.post("/policies", response_model=PublishOut, status_code=201, tags=["policies"])
def publish(request: Request, identity: Caller, body: PublishIn) -> PublishOut:
    """Publish a pack as the next policy set (architect role); identical content is a no-op."""
    outcome = publish_pack(web(request), identity, body.pack, body.message)
    return PublishOut(
        version=outcome.policy_set.version,
        created=outcome.created,
        added=[rule.id for rule in outcome.diff.added],
        changed=[change.rule_id for change in outcome.diff.changed],
        removed=[rule.id for rule in outcome.diff.removed],
        affected_products=sorted({pid for ids in outcome.affected.values() for pid in ids}),
    )


@router.get("/packs", response_model=list[str], tags=["policies"])
def packs(identity: Caller) -> list[str]:
    """The policy packs shipped with specfleet, publishable by name."""
    return bundled_packs()


@router.get("/compliance", response_model=ComplianceOut, tags=["policies"])
def compliance(request: Request, identity: Caller, version: Version | None = None) -> ComplianceOut:
    """Latest status of every active product for each rule of a policy set (default: latest)."""
    context = web(request)
    chosen = policy_set(context, version)
    if chosen is None:
        return ComplianceOut(policy_set_version=None, rules=[], products={})
    rule_ids = [rule.id for rule in chosen.rules]
    rows = list_products(context.engine)
    with Session(context.engine) as session:
        statuses = latest_statuses(session, rule_ids)
    return ComplianceOut(
        policy_set_version=chosen.version,
        rules=rule_ids,
        products={
            row.id: {rule: statuses.get((row.id, rule), "unknown") for rule in rule_ids}
            for row in rows
        },
    )
