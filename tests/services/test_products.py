"""Registering, importing and removing products, recorded under the actor's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import AuditEntry, Product
from specfleet.core.errors import ImportFileError, InputError
from specfleet.core.git import MirrorCache
from specfleet.core.registry import Registration
from specfleet.services.products import (
    MAX_IMPORT_BYTES,
    import_upload,
    on_default_branch,
    register_product,
    remove_product,
)
from tests.conftest import RepoFactory
from tests.services.conftest import PLATFORM, VALID_SPEC


def audit(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(row.actor, row.action) for row in session.exec(select(AuditEntry))]


def test_register_then_remove_and_remove_again(db: Engine, mirrors: MirrorCache, invoices: Path):
    """Registered from the spec; removal keeps history and a second removal changes nothing."""
    with Session(db) as session:
        product = session.get(Product, "invoices")
        assert product is not None and product.active
    assert remove_product(db, mirrors, "lead@example.com", "invoices") is True
    assert remove_product(db, mirrors, "lead@example.com", "invoices") is False
    assert audit(db) == [(PLATFORM, "product.added"), ("lead@example.com", "product.removed")]
    again = register_product(db, mirrors, PLATFORM, Registration(repo=str(invoices)))
    assert again.status == "reactivated"


def test_a_registration_without_a_branch_takes_the_default_branch(
    db: Engine, mirrors: MirrorCache, make_repo: RepoFactory
) -> None:
    repo = make_repo({"dataproduct.yaml": VALID_SPEC}, name="trunk", branch="trunk")
    registration = on_default_branch(mirrors, Registration(repo=str(repo)))
    assert registration.branch == "trunk"
    assert register_product(db, mirrors, PLATFORM, registration).status == "added"


def test_an_upload_is_imported_row_by_row_labelled_with_its_own_name(
    db: Engine, mirrors: MirrorCache, make_repo: RepoFactory
) -> None:
    """Good rows are registered, bad ones reported naming the upload, never the temp folder."""
    repo = make_repo({"dataproduct.yaml": VALID_SPEC}, name="invoices")
    data = f"repo,branch\n{repo},main\n{repo},no-such-branch\n".encode()
    report = import_upload(db, mirrors, PLATFORM, "../../etc/my list.csv", data)
    assert [result.product_id for result in report.results] == ["invoices"]
    (failure,) = report.failed
    assert failure.label.startswith("my_list.csv") and "specfleet-import-" not in failure.reason


def test_an_unreadable_or_oversized_upload_is_refused(db: Engine, mirrors: MirrorCache) -> None:
    with pytest.raises(ImportFileError) as refused:
        import_upload(db, mirrors, PLATFORM, "products.txt", b"whatever")
    assert "specfleet-import-" not in str(refused.value)
    with pytest.raises(InputError, match="larger than"):
        import_upload(db, mirrors, PLATFORM, "big.csv", b"x" * (MAX_IMPORT_BYTES + 1))
    with Session(db) as session:
        assert session.exec(select(Product)).all() == []
