"""Fixtures for the web console: an app on SQLite or PostgreSQL, accounts of every role, and a
product with a real local-forge merge request (bare repository, verification tables)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import git
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from specfleet.core.db import MergeRequest, Product, session_scope
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.core.settings import Settings
from specfleet.web.app import create_app
from specfleet.web.auth import create_account, issue_token
from tests.conftest import EXAMPLES, commit_files

PASSWORD = "correct horse battery"
OWNER_A = "owner-a@example.com"
OWNER_B = "owner-b@example.com"
DESCRIPTION = """## Verification

| check | baseline | candidate |
|---|---|---|
| build and tests | pass | pass |
| contract compatibility | - | compatible |
| policy re-scan | 2 findings | 0 findings |

## Dependency changes

| package | from | to |
|---|---|---|
| pandas | 1.5.3 | 2.2.3 |
"""


@dataclass
class Accounts:
    tokens: dict[str, str]


def settings_for(engine: Engine, home: Path) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return Settings(home=home, database_url=url)


@pytest.fixture
def accounts(engine: Engine) -> Accounts:
    """platform, architect, owner-a (of product A), owner-b (of product B) and viewer."""
    emails = {"owner-a": [OWNER_A], "owner-b": [OWNER_B]}
    roles = {
        "platform": "platform",
        "architect": "architect",
        "owner-a": "owner",
        "owner-b": "owner",
        "viewer": "viewer",
    }
    tokens = {}
    for name, role in roles.items():
        create_account(engine, name, role, emails.get(name, []), PASSWORD, "test-setup")
        tokens[name] = issue_token(engine, name, "test-setup")
    return Accounts(tokens)


@pytest.fixture
def client(engine: Engine, specfleet_home: Path, accounts: Accounts) -> TestClient:
    app = create_app(settings_for(engine, specfleet_home))
    return TestClient(app)


def bearer(accounts: Accounts, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {accounts.tokens[name]}"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: TestClient, name: str) -> str:
    """Sign ``name`` in through the login form; returns the session's CSRF token."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


@dataclass
class ProductWithMergeRequest:
    product_id: str
    other_product_id: str
    merge_request_id: int
    forge: LocalForge
    head: str


def open_merge_request(
    engine: Engine, home: Path, repos: Path, product_id: str, owners: list[str]
) -> tuple[LocalForge, int, str]:
    """A product row and a real local-forge merge request upgrading pandas in its repo."""
    source = repos / product_id
    source.mkdir(parents=True)
    (source / "requirements.txt").write_text("pandas==1.5.3\n")
    (source / "pipeline.py").write_text("import pandas\n")
    repo = git.Repo.init(source, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test Author")
        config.set_value("user", "email", "author@example.com")
    repo.git.add(A=True)
    repo.index.commit("initial commit")
    with session_scope(engine) as session:
        session.add(
            Product(
                id=product_id,
                name=f"Product {product_id}",
                repo_url=str(source),
                owners=owners,
                tags=["finance"],
            )
        )
    forge = LocalForge(engine, home / "forge")
    forge.ensure_project(product_id, source)
    repo.git.checkout("-B", "work", "main")
    head = commit_files(source, {"requirements.txt": "pandas==2.2.3\n"}, "Upgrade pandas")
    repo.git.checkout("main")
    repo.close()
    forge.ensure_branch(BranchPush(product_id, EVERGREEN_BRANCH, head, source))
    forge.ensure_merge_request(
        MergeRequestParams(
            project=product_id,
            product_id=product_id,
            title="Upgrade pandas to 2.2.3",
            description=DESCRIPTION,
            proposal_key=f"key-{product_id}",
        )
    )
    return forge, _id_of(engine, product_id), head


def _id_of(engine: Engine, product_id: str) -> int:
    with session_scope(engine) as session:
        found = session.exec(
            select(MergeRequest.id).where(MergeRequest.product_id == product_id)
        ).first()
    assert found is not None
    return found


@pytest.fixture
def with_merge_request(
    engine: Engine, specfleet_home: Path, tmp_path: Path
) -> ProductWithMergeRequest:
    """Product A (owned by owner-a) with an open merge request; product B owned by owner-b."""
    forge, merge_request_id, head = open_merge_request(
        engine, specfleet_home, tmp_path / "sources", "product-a", [OWNER_A]
    )
    with session_scope(engine) as session:
        session.add(
            Product(id="product-b", name="Product B", repo_url="/nowhere/b", owners=[OWNER_B])
        )
    return ProductWithMergeRequest("product-a", "product-b", merge_request_id, forge, head)


@pytest.fixture
def orders_repo(make_repo) -> Path:
    """The orders example as a real git repository (a valid spec)."""
    return make_repo(source=EXAMPLES / "orders", name="orders")
