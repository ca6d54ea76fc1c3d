"""The registry's tables (SQLModel), shared by the CLI, the workers and the web console.

Lists (owners, tags) and reports are JSON columns: they are read whole with their row and
never joined on. Every timestamp is UTC. Rows that record history (evaluations, proposals,
merge requests, the audit log) are never deleted; a removed product is marked, not erased.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from specfleet.core.db.types import JsonColumnType, UTCDateTime, utcnow


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JsonColumnType, nullable=False))


def _json(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(JsonColumnType, nullable=True))
    return Field(default_factory=dict, sa_column=Column(JsonColumnType, nullable=False))


def _when(nullable: bool = False, index: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True, index=index))
    return Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index)
    )


class Product(SQLModel, table=True):
    """A registered data product: where its repository and spec live, and who owns it."""

    __tablename__ = "product"

    id: str = Field(primary_key=True, max_length=64, description="The spec's id.")
    name: str = Field(max_length=200)
    repo_url: str = Field(max_length=1000, index=True)
    branch: str = Field(default="main", max_length=255)
    spec_path: str = Field(default="dataproduct.yaml", max_length=500)
    forge: str = Field(default="local", max_length=32)
    forge_project: str | None = Field(default=None, max_length=255)
    owners: list[str] = _json_list()
    tags: list[str] = _json_list()
    runtime: str | None = Field(default=None, max_length=32)
    spec_commit: str | None = Field(default=None, max_length=64)
    spec_hash: str | None = Field(
        default=None, max_length=64, description="Git blob id of the spec at spec_commit."
    )
    registration_hash: str | None = Field(
        default=None, max_length=64, description="Fingerprint of the registration's own fields."
    )
    active: bool = Field(default=True, index=True)
    automerge: str | None = Field(
        default=None,
        max_length=32,
        description="The registry's automerge opt-in (security-patch, deterministic, never); "
        "unset: the spec's.",
    )
    registered_by: str | None = Field(default=None, max_length=200)
    registered_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()
    removed_at: dt.datetime | None = _when(nullable=True)


class PolicySetRecord(SQLModel, table=True):
    """An immutable, numbered, content-hashed publication of the organisation's policy pack."""

    __tablename__ = "policy_set"

    version: int = Field(primary_key=True)
    # not unique: publishing an older pack again is a new version with the same content
    content_hash: str = Field(max_length=64, index=True)
    message: str = Field(default="", max_length=2000)
    published_by: str = Field(max_length=200)
    published_at: dt.datetime = _when()


class PolicyRuleRecord(SQLModel, table=True):
    """One rule as it stands in one policy set (rules are copied, never shared across sets)."""

    __tablename__ = "policy_rule"

    policy_set_version: int = Field(foreign_key="policy_set.version", primary_key=True)
    rule_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    severity: str = Field(max_length=16)
    title: str = Field(max_length=300)
    body: dict[str, Any] = _json()


class Evaluation(SQLModel, table=True):
    """One product evaluated in one window for one trigger; unique per fingerprint."""

    __tablename__ = "evaluation"
    __table_args__ = (
        UniqueConstraint("product_id", "window", "fingerprint", name="uq_evaluation_key"),
        Index("ix_evaluation_product_window", "product_id", "window"),
        Index("ix_evaluation_status_lease", "status", "lease_expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64)
    window: str = Field(max_length=16, description="ISO week, e.g. 2026-W48.")
    trigger: str = Field(max_length=16, description="weekly, policy, manual or amendment.")
    fingerprint: str | None = Field(default=None, max_length=64)
    status: str = Field(default="queued", max_length=16, index=True)
    outcome: str | None = Field(default=None, max_length=32)
    policy_set_version: int | None = Field(default=None)
    spec_commit: str | None = Field(default=None, max_length=64)
    queued_at: dt.datetime = _when()
    started_at: dt.datetime | None = _when(nullable=True)
    finished_at: dt.datetime | None = _when(nullable=True)
    summary: dict[str, Any] | None = _json(nullable=True)
    error: str | None = Field(default=None, max_length=4000)
    attempts: int = Field(default=0, description="Deliveries that started this evaluation.")
    # The lease (core.db.ledger): the worker running it and until when; renewed while it runs.
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: dt.datetime | None = _when(nullable=True)
    claimed_at: dt.datetime | None = _when(nullable=True)
    heartbeat_at: dt.datetime | None = _when(nullable=True)
    dispatched_at: dt.datetime | None = _when(
        nullable=True
    )  # last message sent for it (None: at queued_at)


class StageResult(SQLModel, table=True):
    """One pipeline stage of an evaluation: its outcome and timing."""

    __tablename__ = "stage_result"

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    stage: str = Field(max_length=32)
    outcome: str = Field(max_length=32)
    started_at: dt.datetime = _when()
    duration_ms: int = Field(default=0)
    detail: dict[str, Any] | None = _json(nullable=True)


class Proposal(SQLModel, table=True):
    """A candidate change, keyed by its content so a closed one is never proposed again."""

    __tablename__ = "proposal"
    __table_args__ = (UniqueConstraint("product_id", "key", name="uq_proposal_key"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64, index=True)
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id")
    key: str = Field(max_length=64)
    title: str = Field(max_length=300)
    description: str = Field(default="")
    changes: dict[str, Any] | None = _json(nullable=True)
    state: str = Field(default="proposed", max_length=16)
    created_at: dt.datetime = _when()
    # rate limits (console): a proposal over a limit waits in state "deferred" with its reason
    # and priority; released_at is when it was let through to open a new merge request
    deferred_reason: str | None = Field(default=None, max_length=500)
    priority: dict[str, Any] | None = _json(nullable=True)
    released_at: dt.datetime | None = _when(nullable=True, index=True)


class MergeRequest(SQLModel, table=True):
    """The forge's merge request for a product: one open at a time, updated in place."""

    __tablename__ = "merge_request"
    __table_args__ = (Index("ix_merge_request_product_state", "product_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64)
    proposal_id: int | None = Field(default=None, foreign_key="proposal.id")
    forge: str = Field(max_length=32)
    forge_ref: str | None = Field(default=None, max_length=64, description="The forge's MR id.")
    url: str | None = Field(default=None, max_length=1000)
    branch: str = Field(default="specfleet/evergreen", max_length=255)
    target_branch: str = Field(default="main", max_length=255)
    head_commit: str | None = Field(default=None, max_length=64)
    proposal_key: str | None = Field(default=None, max_length=64)
    title: str = Field(max_length=300)
    description: str = Field(default="")
    state: str = Field(default="open", max_length=16)
    draft: bool = Field(default=False)
    labels: list[str] = _json_list()
    approvals: list[str] = _json_list()
    created_at: dt.datetime = _when()
    updated_at: dt.datetime = _when()
    merged_at: dt.datetime | None = _when(nullable=True)
    closed_at: dt.datetime | None = _when(nullable=True)


class AuditEntry(SQLModel, table=True):
    """Who did what to which subject, and when; appended, never changed."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = _when(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=200, index=True)
    detail: dict[str, Any] | None = _json(nullable=True)


class ComplianceRecord(SQLModel, table=True):
    """Whether a product honoured a rule when it was checked (appended: the rollout history)."""

    __tablename__ = "compliance"
    __table_args__ = (Index("ix_compliance_rule_checked", "rule_id", "checked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64, index=True)
    policy_set_version: int = Field(foreign_key="policy_set.version")
    rule_id: str = Field(max_length=64)
    status: str = Field(max_length=16, description="pass, fail, not-applicable or unknown.")
    findings: int = Field(default=0)
    window: str = Field(max_length=16, description="ISO week of the check, e.g. 2026-W48.")
    # the failing findings' stable identities (policies.findings.Finding.identity), sorted;
    # None on rows written before migration 0006
    finding_ids: list[str] | None = _json(nullable=True)
    checked_at: dt.datetime = _when()


class LLMCall(SQLModel, table=True):
    """One request to the LLM endpoint: tokens, estimated cost and outcome (budgets sum these)."""

    __tablename__ = "llm_call"
    __table_args__ = (Index("ix_llm_call_product_window", "product_id", "window"),)

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(max_length=64)
    window: str = Field(max_length=16)
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id")
    model: str = Field(max_length=200)
    purpose: str = Field(default="plan", max_length=32, description="plan or repair.")
    prompt_tokens: int = Field(default=0)
    cached_prompt_tokens: int = Field(default=0)
    completion_tokens: int = Field(default=0)
    cost_usd: float = Field(default=0.0)
    duration_ms: int = Field(default=0)
    outcome: str = Field(default="ok", max_length=32, description="ok, invalid, error, timeout.")
    at: dt.datetime = _when()


class AmendmentRequest(SQLModel, table=True):
    """An owner's request to change a product's spec, and where it got to.

    ``state``: queued, conflict (returned to the owner with the clauses it collides with),
    proposed (a merge request carries the amended spec and its implementation), needs-human
    (no verified implementation), failed. Rows are never deleted.
    """

    __tablename__ = "amendment_request"

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64, index=True)
    requested_by: str = Field(max_length=200)
    requested_at: dt.datetime = _when()
    requirement: str = Field(max_length=4000, description="What the owner asked, as typed.")
    why: str | None = Field(default=None, max_length=4000)
    state: str = Field(default="queued", max_length=16)
    evaluation_id: int | None = Field(default=None, foreign_key="evaluation.id", index=True)
    amendment_id: str | None = Field(default=None, max_length=32, description="e.g. A5.")
    conflict: dict[str, Any] | None = _json(nullable=True)  # clauses, explanation
    outcome_detail: str | None = Field(default=None, max_length=4000)
    merge_request_url: str | None = Field(default=None, max_length=500)
    updated_at: dt.datetime = _when()


# -- notifications (core/notify): de-duplication of sent messages and owners' opt-outs -------


class NotificationSent(SQLModel, table=True):
    """One notification to one owner on one channel: the weekly digest of a week, or the
    needs-human notice of an evaluation. The unique key makes a second scheduler or a retried
    task send nothing twice; the row is claimed (``sending``) before the message goes out."""

    __tablename__ = "notification_sent"
    __table_args__ = (UniqueConstraint("kind", "owner", "key", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, description="digest or needs-human.")
    owner: str = Field(max_length=320, index=True)
    key: str = Field(max_length=64, description="ISO week (digest) or evaluation id.")
    channel: str = Field(max_length=16, description="email or webhook.")
    state: str = Field(default="sending", max_length=16, description="sending or sent.")
    at: dt.datetime = _when()
    detail: dict[str, Any] | None = _json(nullable=True)


class NotificationOptOut(SQLModel, table=True):
    """An owner who asked to receive no digest and no needs-human notice."""

    __tablename__ = "notification_opt_out"

    owner: str = Field(primary_key=True, max_length=320)
    at: dt.datetime = _when()
    by: str = Field(max_length=200)


class PolicySetFleetRules(SQLModel, table=True):
    """The fleet-wide section of a policy set (``fleet.yaml`` of the pack): rate limits,
    the most automerge an owner may opt into, whether owners merge their own merge requests."""

    __tablename__ = "policy_set_fleet"

    policy_set_version: int = Field(foreign_key="policy_set.version", primary_key=True)
    body: dict[str, Any] = _json()


class AutomergeRecord(SQLModel, table=True):
    """A merge request specfleet merged on an owner's opt-in: what, why, and its revert.

    Appended when the merge happens and read by the weekly digest (``announced_at`` is set
    by whoever announces it), so every automerge is audited, announced and revertible.
    """

    __tablename__ = "automerge_record"

    id: int | None = Field(default=None, primary_key=True)
    product_id: str = Field(foreign_key="product.id", max_length=64, index=True)
    merge_request_id: int = Field(foreign_key="merge_request.id", index=True)
    proposal_key: str | None = Field(default=None, max_length=64)
    level: str = Field(max_length=32, description="The opted level it was merged under.")
    title: str = Field(default="", max_length=300)
    merged_at: dt.datetime = _when(index=True)
    merged_commit: str | None = Field(default=None, max_length=64)
    base_commit: str | None = Field(
        default=None, max_length=64, description="The target branch's tip before the merge."
    )
    reasons: list[str] = _json_list()
    revert_merge_request_id: int | None = Field(default=None, foreign_key="merge_request.id")
    announced_at: dt.datetime | None = _when(nullable=True)
