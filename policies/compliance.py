"""Compliance: which product honours which rule, and how a rule rolled out over the weeks."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import ComplianceRecord, Product, session_scope
from specfleet.core.windows import iso_week, weeks_between
from specfleet.policies.check import ProductCheck, RuleStatus


def record_check(engine: Engine, check: ProductCheck) -> int:
    """Append one row per rule for a registered product's check; returns the rows written."""
    if check.policy_version is None:
        return 0
    window = iso_week(check.checked_at.date())
    with session_scope(engine) as session:
        product = session.get(Product, check.product_id)
        if product is None or not product.active:
            return 0
        for rule_id, status in check.statuses.items():
            session.add(
                ComplianceRecord(
                    product_id=check.product_id,
                    policy_set_version=check.policy_version,
                    rule_id=rule_id,
                    status=status,
                    findings=sum(1 for f in check.findings_of(rule_id) if f.status == "fail"),
                    finding_ids=sorted(
                        f.identity for f in check.findings_of(rule_id) if f.status == "fail"
                    ),
                    window=window,
                    checked_at=check.checked_at,
                )
            )
    return len(check.statuses)


@dataclass(frozen=True)
class ComplianceMatrix:
    products: tuple[str, ...]
    rules: tuple[str, ...]
    cells: dict[tuple[str, str], RuleStatus]  # (product, rule) -> latest status

    def status(self, product: str, rule: str) -> RuleStatus:
        return self.cells.get((product, rule), "unknown")

    def passing(self, rule: str) -> int:
        return sum(1 for product in self.products if self.status(product, rule) == "pass")


def compliance_matrix(engine: Engine, rule_ids: list[str]) -> ComplianceMatrix:
    """The latest status of every registered product for each rule (unknown if never checked)."""
    with Session(engine) as session:
        products = [
            product.id
            for product in session.exec(
                select(Product).where(col(Product.active)).order_by(col(Product.id))
            )
        ]
        rows = session.exec(
            select(ComplianceRecord)
            .where(col(ComplianceRecord.rule_id).in_(rule_ids))
            .order_by(col(ComplianceRecord.checked_at), col(ComplianceRecord.id))
        ).all()
    cells: dict[tuple[str, str], RuleStatus] = {}
    for row in rows:  # later rows overwrite earlier ones: the latest check wins
        cells[(row.product_id, row.rule_id)] = row.status  # type: ignore[assignment]
    return ComplianceMatrix(tuple(products), tuple(rule_ids), cells)


@dataclass(frozen=True)
class RolloutWeek:
    window: str
    passing: int
    failing: int
    unknown: int
    checked: int


def rollout(engine: Engine, rule_id: str, since: dt.date, until: dt.date) -> list[RolloutWeek]:
    """Per ISO week since ``since``: products passing, failing or unknown at that week's end.

    A product keeps its last known status into weeks in which it was not checked again, so
    the curve shows the fleet's state, not just the week's activity.
    """
    with Session(engine) as session:
        rows = session.exec(
            select(ComplianceRecord)
            .where(ComplianceRecord.rule_id == rule_id)
            .order_by(col(ComplianceRecord.checked_at), col(ComplianceRecord.id))
        ).all()
    by_week: dict[str, list[ComplianceRecord]] = defaultdict(list)
    for row in rows:
        by_week[row.window].append(row)
    state: dict[str, str] = {}
    weeks = []
    for window in weeks_between(since, until):
        for row in by_week.get(window, []):
            if row.status != "not-applicable":
                state[row.product_id] = row.status
            else:
                state.pop(row.product_id, None)
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
    return weeks
