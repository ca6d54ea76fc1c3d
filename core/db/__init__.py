"""Persistence: SQLModel tables, engines and sessions, Alembic migrations."""

from core.db.accounts import Account, ApiToken
from core.db.engine import ensure_schema, make_engine, session_scope, upgrade
from core.db.tables import (
    AmendmentRequest,
    AuditEntry,
    AutomergeRecord,
    ComplianceRecord,
    Evaluation,
    LLMCall,
    MergeRequest,
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
    "PolicyRuleRecord",
    "PolicySetFleetRules",
    "PolicySetRecord",
    "Product",
    "Proposal",
    "StageResult",
    "ensure_schema",
    "make_engine",
    "session_scope",
    "upgrade",
]
