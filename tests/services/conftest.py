"""Use cases on a real SQLite database (one test also on PostgreSQL), real git repositories."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.git import MirrorCache
from specfleet.core.registry import Registration
from specfleet.services.products import register_product
from tests.conftest import RepoFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUNDLED = Path(__file__).resolve().parents[2] / "policies" / "pack" / "v1"
VALID_SPEC = (FIXTURES / "specs" / "valid.yaml").read_text()  # product invoices, ana@ and raj@
PLATFORM = "platform@example.com"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'services.db'}")
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def mirrors(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "mirrors")


@pytest.fixture
def invoices(db: Engine, mirrors: MirrorCache, make_repo: RepoFactory) -> Path:
    """The product ``invoices`` registered from a real repository; its repository's path."""
    repo = make_repo({"dataproduct.yaml": VALID_SPEC}, name="invoices")
    register_product(db, mirrors, PLATFORM, Registration(repo=str(repo)))
    return repo


def spec_pack(folder: Path) -> Path:
    """A pack of one spec rule that applies to every product (no Semgrep files to validate)."""
    (folder / "rules").mkdir(parents=True)
    shutil.copy(BUNDLED / "rules" / "ORG-SPEC-001.yaml", folder / "rules")
    return folder
