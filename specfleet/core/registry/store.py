"""The registry in the database: register, import, remove and query products, audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from specfleet.core.db import AuditEntry, Product, session_scope
from specfleet.core.db.types import utcnow
from specfleet.core.errors import ProductConflict, ProductNotFound, SpecfleetError, SpecInvalid
from specfleet.core.git import MirrorCache
from specfleet.core.registry.decisions import (
    Registration,
    RegistrationResult,
    RegistrationStatus,
    ResolvedProduct,
    decide,
    is_unchanged,
)
from specfleet.core.registry.reader import LocatedSpec, SpecReader


@dataclass(frozen=True)
class ImportRow:
    """One row of an import file: its location label and either a registration or an error."""

    label: str  # e.g. "products.csv:12"
    registration: Registration | None
    error: str | None = None


@dataclass(frozen=True)
class RowFailure:
    label: str
    reason: str


@dataclass
class ImportReport:
    results: list[RegistrationResult] = field(default_factory=list)
    failed: list[RowFailure] = field(default_factory=list)

    def count(self, status: RegistrationStatus) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def changed_anything(self) -> bool:
        return any(result.status != "unchanged" for result in self.results)


class Registry:
    """Registered products in the database; every change is audited."""

    def __init__(self, engine: Engine, mirrors: MirrorCache, actor: str) -> None:
        self.engine = engine
        self.mirrors = mirrors
        self.actor = actor

    def add(self, registration: Registration) -> RegistrationResult:
        """Register one product; raises what prevents it (invalid spec, conflict, git)."""
        return self.record(SpecReader(self.mirrors).resolve(registration))

    def record(self, resolved: ResolvedProduct) -> RegistrationResult:
        """Register a product whose spec was already read (an onboarding draft, say)."""
        with session_scope(self.engine) as session:
            existing = session.get(Product, resolved.spec.id)
            result = decide(existing, resolved)
            self._write(session, [(existing, resolved, result)])
        return result

    def import_rows(
        self, rows: Sequence[ImportRow], on_progress: Callable[[int], None] | None = None
    ) -> ImportReport:
        """Register many products; a bad row is reported and the rest are imported.

        All accepted rows are written in one transaction, so an interrupted import leaves
        the registry as it was.
        """
        report = ImportReport()
        candidates = []
        for row in rows:
            if row.registration is None:
                report.failed.append(RowFailure(row.label, row.error or "empty row"))
            else:
                candidates.append((row, row.registration))
        reader = SpecReader(self.mirrors)
        located = reader.locate([registration for _, registration in candidates])
        registered = self._products_at(
            {item.repo_url for item in located if isinstance(item, LocatedSpec)}
        )
        outcomes: dict[int, Product | ResolvedProduct | SpecfleetError] = {}
        to_read: list[tuple[int, LocatedSpec]] = []
        for index, ((_, registration), item) in enumerate(zip(candidates, located, strict=True)):
            if isinstance(item, SpecfleetError):
                outcomes[index] = item
                continue
            existing = registered.get((item.repo_url, registration.spec))
            if existing is not None and is_unchanged(
                existing, registration, item.repo_url, item.blob
            ):
                outcomes[index] = existing
            else:
                to_read.append((index, item))
        skipped = len(candidates) - len(to_read)
        if on_progress is not None:
            on_progress(skipped)
        read = reader.read(
            [item for _, item in to_read],
            on_progress=(lambda done: on_progress(skipped + done)) if on_progress else None,
        )
        for (index, _), resolved in zip(to_read, read, strict=True):
            outcomes[index] = resolved

        first_row_of: dict[str, str] = {}
        accepted: list[ResolvedProduct] = []
        for index, (row, _) in enumerate(candidates):
            outcome = outcomes[index]
            if isinstance(outcome, SpecfleetError):
                report.failed.append(RowFailure(row.label, _reason(outcome)))
                continue
            product_id = outcome.id if isinstance(outcome, Product) else outcome.spec.id
            if product_id in first_row_of:
                report.failed.append(
                    RowFailure(
                        row.label,
                        f"product {product_id!r} is already in {first_row_of[product_id]}",
                    )
                )
                continue
            first_row_of[product_id] = row.label
            if isinstance(outcome, Product):
                report.results.append(RegistrationResult(product_id, "unchanged"))
            else:
                accepted.append(outcome)

        with session_scope(self.engine) as session:
            existing_by_id = _products_by_id(session, [item.spec.id for item in accepted])
            changes = []
            for resolved in accepted:
                existing = existing_by_id.get(resolved.spec.id)
                try:
                    result = decide(existing, resolved)
                except ProductConflict as error:
                    label = first_row_of[resolved.spec.id]
                    report.failed.append(RowFailure(label, str(error)))
                    continue
                changes.append((existing, resolved, result))
                report.results.append(result)
            self._write(session, changes)
        return report

    def _write(
        self,
        session: Session,
        changes: Iterable[tuple[Product | None, ResolvedProduct, RegistrationResult]],
    ) -> None:
        """Insert new products in bulk, update changed ones, and audit every change."""
        now = utcnow()
        new_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        for existing, resolved, result in changes:
            if result.status == "unchanged":
                continue
            desired = resolved.desired_fields()
            if existing is None:
                new_rows.append(
                    {
                        "id": resolved.spec.id,
                        "spec_commit": resolved.spec_commit,
                        "active": True,
                        "registered_by": self.actor,
                        "registered_at": now,
                        "updated_at": now,
                        **desired,
                    }
                )
            else:
                for name, value in desired.items():
                    setattr(existing, name, value)
                existing.spec_commit = resolved.spec_commit
                existing.active = True
                existing.removed_at = None
                existing.updated_at = now
                session.add(existing)
            audit_rows.append(
                {
                    "at": now,
                    "actor": self.actor,
                    "action": f"product.{result.status}",
                    "subject_type": "product",
                    "subject_id": resolved.spec.id,
                    "detail": {
                        "changed": list(result.changed_fields),
                        "commit": resolved.spec_commit,
                    },
                }
            )
        if new_rows:
            session.execute(insert(Product), new_rows)
        if audit_rows:
            session.execute(insert(AuditEntry), audit_rows)

    def remove(self, product_id: str) -> bool:
        """Soft-remove: the row and its history stay; returns False when already removed."""
        with session_scope(self.engine) as session:
            product = session.get(Product, product_id)
            if product is None:
                raise ProductNotFound(f"no product {product_id!r} is registered")
            if not product.active:
                return False
            product.active = False
            product.removed_at = product.updated_at = utcnow()
            session.add(product)
            session.add(
                AuditEntry(
                    actor=self.actor,
                    action="product.removed",
                    subject_type="product",
                    subject_id=product_id,
                )
            )
        return True

    def _products_at(self, repo_urls: set[str]) -> dict[tuple[str, str], Product]:
        """Active products registered from these repositories, by (repository, spec path)."""
        found: dict[tuple[str, str], Product] = {}
        urls = sorted(repo_urls)
        with Session(self.engine) as session:
            for start in range(0, len(urls), 500):
                statement = select(Product).where(
                    col(Product.repo_url).in_(urls[start : start + 500]), col(Product.active)
                )
                for product in session.exec(statement):
                    found[(product.repo_url, product.spec_path)] = product
        return found


def get_product(engine: Engine, product_id: str) -> Product:
    with Session(engine) as session:
        product = session.get(Product, product_id)
    if product is None:
        raise ProductNotFound(f"no product {product_id!r} is registered")
    return product


def list_products(
    engine: Engine,
    include_removed: bool = False,
    owner: str | None = None,
    tag: str | None = None,
) -> list[Product]:
    with Session(engine) as session:
        statement = select(Product).order_by(col(Product.id))
        if not include_removed:
            statement = statement.where(col(Product.active))
        products = list(session.exec(statement))
    if owner:
        products = [product for product in products if owner in product.owners]
    if tag:
        products = [product for product in products if tag in product.tags]
    return products


def product_history(engine: Engine, product_id: str, limit: int = 20) -> list[AuditEntry]:
    with Session(engine) as session:
        statement = (
            select(AuditEntry)
            .where(AuditEntry.subject_type == "product", AuditEntry.subject_id == product_id)
            .order_by(col(AuditEntry.id).desc())
            .limit(limit)
        )
        return list(session.exec(statement))


def _products_by_id(session: Session, ids: Sequence[str]) -> dict[str, Product]:
    found: dict[str, Product] = {}
    # chunks keep the IN list inside SQLite's bound-parameter limit
    for start in range(0, len(ids), 500):
        statement = select(Product).where(col(Product.id).in_(ids[start : start + 500]))
        for product in session.exec(statement):
            found[product.id] = product
    return found


def _reason(error: SpecfleetError) -> str:
    if isinstance(error, SpecInvalid):
        shown = "; ".join(problem.render() for problem in error.problems[:3])
        more = f" (and {len(error.problems) - 3} more)" if len(error.problems) > 3 else ""
        return f"invalid spec: {shown}{more}"
    return str(error)


def utc_text(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"
