"""Published policy sets in the database: immutable, numbered, content-hashed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from specfleet.core.db import (
    AuditEntry,
    PolicyRuleRecord,
    PolicySetFleetRules,
    PolicySetRecord,
    Product,
    session_scope,
)
from specfleet.core.db.types import utcnow
from specfleet.core.errors import InputError
from specfleet.policies.diff import PolicyDiff, ProductFacts, diff_rules, newly_affected
from specfleet.policies.model import Rule
from specfleet.policies.packs import Pack


@dataclass(frozen=True)
class PolicySet:
    version: int
    content_hash: str
    message: str
    published_by: str
    published_at: dt.datetime
    rules: tuple[Rule, ...]
    semgrep_files: dict[str, str]

    def rule(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


@dataclass(frozen=True)
class PublishOutcome:
    policy_set: PolicySet
    created: bool  # False: identical content was already published
    diff: PolicyDiff  # against the previous version (everything added for the first)
    affected: dict[str, list[str]]  # rule id -> registered products to re-evaluate
    unknown_products: dict[str, list[str]]  # rule id -> scoped product ids not registered


def publish(engine: Engine, pack: Pack, message: str, actor: str) -> PublishOutcome:
    """Publish ``pack`` as the next version, unless its content is already the latest."""
    digest = pack.content_hash()
    with session_scope(engine) as session:
        latest = _latest_record(session)
        if latest is not None and latest.content_hash == digest:
            current = _load(session, latest)
            return PublishOutcome(current, False, diff_rules(current.rules, current.rules), {}, {})
        previous = _load(session, latest) if latest is not None else None
        version = (latest.version if latest else 0) + 1
        now = utcnow()
        session.add(
            PolicySetRecord(
                version=version,
                content_hash=digest,
                message=message,
                published_by=actor,
                published_at=now,
            )
        )
        session.flush()
        for rule in pack.rules:
            session.add(
                PolicyRuleRecord(
                    policy_set_version=version,
                    rule_id=rule.id,
                    kind=rule.kind,
                    severity=rule.severity,
                    title=rule.title,
                    body=_body(rule, pack.semgrep_files),
                )
            )
        if pack.fleet is not None:
            session.add(PolicySetFleetRules(policy_set_version=version, body=dict(pack.fleet)))
        diff = diff_rules(previous.rules if previous else (), pack.rules)
        products = _product_facts(session)
        affected = newly_affected(diff, products)
        registered = {product.id for product in products}
        unknown = {
            rule.id: [pid for pid in rule.scope.products if pid not in registered]
            for rule in pack.rules
            if any(pid not in registered for pid in rule.scope.products)
        }
        session.add(
            AuditEntry(
                actor=actor,
                action="policy.published",
                subject_type="policy_set",
                subject_id=str(version),
                detail={
                    "message": message,
                    "added": [rule.id for rule in diff.added],
                    "changed": [change.rule_id for change in diff.changed],
                    "removed": [rule.id for rule in diff.removed],
                },
                at=now,
            )
        )
        policy_set = PolicySet(
            version, digest, message, actor, now, pack.rules, dict(pack.semgrep_files)
        )
    return PublishOutcome(policy_set, True, diff, affected, unknown)


def list_policy_sets(engine: Engine) -> list[tuple[PolicySetRecord, int]]:
    """Every version with its rule count, newest first."""
    with Session(engine) as session:
        counts = dict(
            session.exec(
                select(PolicyRuleRecord.policy_set_version, func.count()).group_by(
                    col(PolicyRuleRecord.policy_set_version)
                )
            ).all()
        )
        records = session.exec(
            select(PolicySetRecord).order_by(col(PolicySetRecord.version).desc())
        ).all()
        return [(record, counts.get(record.version, 0)) for record in records]


def load_policy_set(engine: Engine, version: int | None = None) -> PolicySet:
    """One version (the latest when ``version`` is None); InputError when it does not exist."""
    with Session(engine) as session:
        record = (
            _latest_record(session) if version is None else session.get(PolicySetRecord, version)
        )
        if record is None:
            raise InputError(
                "no policy set is published yet" if version is None else f"no policy set v{version}"
            )
        return _load(session, record)


def _latest_record(session: Session) -> PolicySetRecord | None:
    return session.exec(
        select(PolicySetRecord).order_by(col(PolicySetRecord.version).desc()).limit(1)
    ).first()


def _load(session: Session, record: PolicySetRecord) -> PolicySet:
    rows = session.exec(
        select(PolicyRuleRecord)
        .where(PolicyRuleRecord.policy_set_version == record.version)
        .order_by(col(PolicyRuleRecord.rule_id))
    ).all()
    rules = []
    semgrep_files: dict[str, str] = {}
    for row in rows:
        body = dict(row.body)
        semgrep_text = body.pop("semgrep_text", None)
        rule = Rule.model_validate(body)
        if rule.semgrep is not None and semgrep_text is not None:
            semgrep_files[rule.semgrep.file] = semgrep_text
        rules.append(rule)
    return PolicySet(
        record.version,
        record.content_hash,
        record.message,
        record.published_by,
        record.published_at,
        tuple(rules),
        semgrep_files,
    )


def _body(rule: Rule, semgrep_files: dict[str, str]) -> dict[str, Any]:
    body = rule.model_dump(mode="json")
    if rule.semgrep is not None:
        # each stored rule is self-contained: its Semgrep rules travel with it
        body["semgrep_text"] = semgrep_files[rule.semgrep.file]
    return body


def _product_facts(session: Session) -> list[ProductFacts]:
    products = session.exec(select(Product).where(col(Product.active))).all()
    return [ProductFacts(product.id, tuple(product.tags), product.runtime) for product in products]


def first_published(engine: Engine, rule_id: str) -> dt.date | None:
    """When a rule first appeared in a published policy set."""
    with Session(engine) as session:
        first = session.exec(
            select(PolicySetRecord.published_at)
            .join(
                PolicyRuleRecord,
                col(PolicyRuleRecord.policy_set_version) == col(PolicySetRecord.version),
            )
            .where(PolicyRuleRecord.rule_id == rule_id)
            .order_by(col(PolicySetRecord.version))
            .limit(1)
        ).first()
    return first.date() if first else None
