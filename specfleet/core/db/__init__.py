"""Persistence: SQLModel tables, engines and sessions, Alembic migrations."""

from specfleet.core.db.accounts import Account, ApiToken, SignInThrottle, WebSession
from specfleet.core.db.engine import ensure_schema, make_engine, session_scope, upgrade
from specfleet.core.db.tables import (
    AmendmentRequest,
    AuditEntry,
    AutomergeRecord,
    ComplianceRecord,
    Evaluation,
    LLMCall,
    MergeRequest,
    NotificationOptOut,
    NotificationSent,
    PolicyRuleRecord,
    PolicySetFleetRules,
    PolicySetRecord,
    Product,
    Proposal,
    StageResult,
)

__all__ = [
    "Account",
    "AmendmentRequest",
    "ApiToken",
    "AuditEntry",
    "AutomergeRecord",
    "ComplianceRecord",
    "Evaluation",
    "LLMCall",
    "MergeRequest",
    "NotificationOptOut",
    "NotificationSent",
    "PolicyRuleRecord",
    "PolicySetFleetRules",
    "PolicySetRecord",
    "Product",
    "Proposal",
    "SignInThrottle",
    "StageResult",
    "WebSession",
    "ensure_schema",
    "make_engine",
    "session_scope",
    "upgrade",
]
