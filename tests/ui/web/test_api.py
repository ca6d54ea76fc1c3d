"""The JSON API: tokens, roles, merge-request actions, registration, policies and bad input."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import Account, ApiToken, AuditEntry, MergeRequest, Product, session_scope
from tests.ui.web.conftest import Accounts, ProductWithMergeRequest, bearer


def audit_actions(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        return [(row.actor, row.action) for row in rows]


def test_no_token_is_401_with_a_message(client: TestClient) -> None:
    """A call without a token is refused with 401, a Bearer challenge and a readable message."""
    response = client.get("/api/v1/products")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["message"]


def test_a_forged_or_revoked_token_is_401(
    client: TestClient, accounts: Accounts, engine: Engine
) -> None:
    """A token with a wrong secret, or a revoked one, no longer opens the API."""
    real = accounts.tokens["viewer"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    )
    assert client.get("/api/v1/me", headers=bearer(accounts, "viewer")).json()["role"] == "viewer"
    with session_scope(engine) as session:
        for row in session.exec(select(ApiToken)).all():
            row.revoked_at = row.created_at
            session.add(row)
    assert client.get("/api/v1/me", headers=bearer(accounts, "viewer")).status_code == 401


def test_tokens_and_passwords_are_stored_hashed(engine: Engine, accounts: Accounts) -> None:
    """Neither a token nor a password appears in the database, only salted scrypt hashes."""
    with Session(engine) as session:
        tokens = session.exec(select(ApiToken)).all()
        accounts_rows = session.exec(select(Account)).all()
    stored = " ".join(row.token_hash for row in tokens) + " ".join(
        row.password_hash or "" for row in accounts_rows
    )
    for token in accounts.tokens.values():
        assert token.split("_", 2)[2] not in stored
    assert "correct horse" not in stored
    assert all(row.token_hash.startswith("scrypt$") for row in tokens)
    assert len({row.token_hash.split("$")[4] for row in tokens}) == len(tokens)  # own salts


def test_owner_approves_and_merges_their_merge_request(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest, engine
) -> None:
    """The product's owner approves then merges; the target branch moves and both are audited."""
    mr = with_merge_request.merge_request_id
    headers = bearer(accounts, "owner-a")
    shown = client.get(f"/api/v1/merge-requests/{mr}", headers=headers).json()
    assert shown["state"] == "open" and "| build and tests | pass | pass |" in shown["description"]
    approved = client.post(f"/api/v1/merge-requests/{mr}/approve", headers=headers)
    assert approved.status_code == 200 and approved.json()["approvals"] == ["owner-a"]
    merged = client.post(f"/api/v1/merge-requests/{mr}/merge", headers=headers)
    assert merged.status_code == 200 and merged.json()["state"] == "merged"
    assert ("owner-a", "mr.approve") in audit_actions(engine)
    assert ("owner-a", "mr.merge") in audit_actions(engine)
    forge = with_merge_request.forge
    import git

    bare = git.Repo(forge.project_path("product-a"))
    assert bare.commit("refs/heads/main").hexsha == with_merge_request.head
    bare.close()


def test_owner_of_another_product_gets_403_and_nothing_changes(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest, engine
) -> None:
    """owner-b cannot approve, merge or close product A's merge request; its row is untouched."""
    mr = with_merge_request.merge_request_id
    before = audit_actions(engine)
    for action in ("approve", "merge", "close"):
        response = client.post(
            f"/api/v1/merge-requests/{mr}/{action}", headers=bearer(accounts, "owner-b")
        )
        assert response.status_code == 403
        assert "does not own product product-a" in response.json()["message"]
    for name in ("viewer", "platform", "architect"):
        response = client.post(
            f"/api/v1/merge-requests/{mr}/approve", headers=bearer(accounts, name)
        )
        assert response.status_code == 403
    with Session(engine) as session:
        row = session.get(MergeRequest, mr)
    assert row is not None and row.state == "open" and row.approvals == []
    assert audit_actions(engine) == before


def test_merging_without_approval_is_409(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """Merge before approval: refused (409) with the reason, the merge request stays open."""
    mr = with_merge_request.merge_request_id
    response = client.post(
        f"/api/v1/merge-requests/{mr}/merge", headers=bearer(accounts, "owner-a")
    )
    assert response.status_code == 409
    assert "approve it first" in response.json()["message"]


def test_unknown_ids_are_404(client: TestClient, accounts: Accounts) -> None:
    """A product, evaluation, merge request or policy set that does not exist is a 404."""
    headers = bearer(accounts, "viewer")
    for path in (
        "/api/v1/products/nope",
        "/api/v1/evaluations/999",
        "/api/v1/merge-requests/999",
        "/api/v1/policies/42",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 404, path
        assert response.json()["message"]
    response = client.post(
        "/api/v1/merge-requests/999/approve", headers=bearer(accounts, "owner-a")
    )
    assert response.status_code == 404


def test_platform_registers_a_product_and_others_cannot(
    client: TestClient, accounts: Accounts, orders_repo: Path, engine: Engine
) -> None:
    """Registration takes the platform role; the row is written and audited under its name."""
    body = {"repo": str(orders_repo), "owners": [], "tags": []}
    refused = client.post("/api/v1/products", json=body, headers=bearer(accounts, "owner-a"))
    assert refused.status_code == 403 and "platform role" in refused.json()["message"]
    created = client.post("/api/v1/products", json=body, headers=bearer(accounts, "platform"))
    assert created.status_code == 201, created.text
    assert created.json() == {
        "product_id": "orders",
        "status": "added",
        "changed_fields": [],
        "merge_request": None,
    }
    assert ("platform", "product.added") in audit_actions(engine)
    listed = client.get("/api/v1/products", headers=bearer(accounts, "viewer")).json()
    assert [item["id"] for item in listed] == ["orders"]
    removed = client.delete("/api/v1/products/orders", headers=bearer(accounts, "platform"))
    assert removed.json() == {"product_id": "orders", "removed": True}


def test_a_dbt_repository_without_spec_is_onboarded_on_request(
    client: TestClient, accounts: Accounts, make_repo, engine: Engine, tmp_path: Path
) -> None:
    """No spec: 422 SpecMissing; with "onboard": 201, the product registered from the draft on
    the repository's default branch, and one onboarding merge request carrying it."""
    from tests.ui.test_cli_spec_init import dbt_project_without_spec

    repo = make_repo(source=dbt_project_without_spec(tmp_path), name="shop", branch="trunk")
    headers = bearer(accounts, "platform")
    missing = client.post("/api/v1/products", json={"repo": str(repo)}, headers=headers)
    assert missing.status_code == 422 and missing.json()["error"] == "SpecMissing"
    body = {"repo": str(repo), "onboard": True, "owners": ["ana@example.com"]}
    onboarded = client.post("/api/v1/products", json=body, headers=headers)
    assert onboarded.status_code == 201, onboarded.text
    assert onboarded.json()["status"] == "onboarding"
    assert onboarded.json()["merge_request"].startswith("specfleet://shop_marts/")
    with Session(engine) as session:
        product = session.get(Product, "shop_marts")
        assert product is not None and product.branch == "trunk"
        (request,) = session.exec(select(MergeRequest)).all()
        assert (request.branch, request.target_branch) == ("specfleet/onboarding", "trunk")
        assert "Before you merge" in request.description
    again = client.post("/api/v1/products", json=body, headers=headers)
    assert again.status_code == 201
    with Session(engine) as session:
        assert len(session.exec(select(MergeRequest)).all()) == 1


def test_an_invalid_spec_is_422_with_its_problems(
    client: TestClient, accounts: Accounts, make_repo, engine: Engine
) -> None:
    """A repository whose spec breaks the format: 422 naming file, line and field; no row."""
    spec = (Path(__file__).resolve().parents[3] / "examples/orders/dataproduct.yaml").read_text()
    broken = make_repo({"dataproduct.yaml": spec.replace("spec_version: 1", "spec_version: 7")})
    response = client.post(
        "/api/v1/products", json={"repo": str(broken)}, headers=bearer(accounts, "platform")
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "SpecInvalid"
    assert any("spec_version" in problem for problem in body["problems"])
    with Session(engine) as session:
        assert session.exec(select(Product)).all() == []


def test_a_bad_registration_is_400_not_a_crash(client: TestClient, accounts: Accounts) -> None:
    """An owner that is not an e-mail, or a missing repository: 400 with the reason."""
    headers = bearer(accounts, "platform")
    response = client.post(
        "/api/v1/products", json={"repo": "/x", "owners": ["not-an-email"]}, headers=headers
    )
    assert response.status_code == 400
    assert "not an e-mail address" in response.json()["message"]
    missing = client.post("/api/v1/products", json={"repo": "/does/not/exist"}, headers=headers)
    assert missing.status_code in (400, 422)
    assert "does not exist" in missing.json()["message"]


def test_a_malformed_import_file_is_400(
    client: TestClient, accounts: Accounts, engine: Engine
) -> None:
    """A CSV with an unknown column, or a file that is not CSV/YAML: 400, nothing registered."""
    headers = bearer(accounts, "platform")
    response = client.post(
        "/api/v1/products/import",
        files={"file": ("products.csv", b"repository,colour\n/x,red\n", "text/csv")},
        headers=headers,
    )
    assert response.status_code == 400
    assert "products.csv:1: unknown column(s) 'repository', 'colour'" in response.json()["message"]
    assert "/tmp" not in response.json()["message"]
    other = client.post(
        "/api/v1/products/import",
        files={"file": ("products.txt", b"hello", "text/plain")},
        headers=headers,
    )
    assert other.status_code == 400 and "expected a .csv, .yaml or .yml" in other.json()["message"]
    with Session(engine) as session:
        assert session.exec(select(Product)).all() == []


def test_import_reports_bad_rows_and_registers_good_ones(
    client: TestClient, accounts: Accounts, orders_repo: Path
) -> None:
    """A YAML import with one good and one bad row: the good one is registered, the bad named."""
    text = f"- repo: {orders_repo}\n- repo: /does/not/exist\n"
    response = client.post(
        "/api/v1/products/import",
        files={"file": ("fleet.yaml", text.encode(), "application/yaml")},
        headers=bearer(accounts, "platform"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["product_id"] for item in body["results"]] == ["orders"]
    assert body["failed"][0]["row"].startswith("fleet.yaml:2")


def test_architect_publishes_and_compliance_gains_the_new_rule(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest, engine
) -> None:
    """v1 then v2: the diff shows ORG-PY-004 added and the compliance matrix gains its column."""
    refused = client.post(
        "/api/v1/policies",
        json={"pack": "v1", "message": "m"},
        headers=bearer(accounts, "platform"),
    )
    assert refused.status_code == 403
    headers = bearer(accounts, "architect")
    first = client.post(
        "/api/v1/policies", json={"pack": "v1", "message": "first"}, headers=headers
    )
    assert first.status_code == 201, first.text
    before = client.get("/api/v1/compliance", headers=headers).json()
    assert "ORG-PY-004" not in before["rules"]
    second = client.post("/api/v1/policies", json={"pack": "v2", "message": "py"}, headers=headers)
    assert second.json()["version"] == 2 and "ORG-PY-004" in second.json()["added"]
    after = client.get("/api/v1/compliance", headers=headers).json()
    assert after["policy_set_version"] == 2 and "ORG-PY-004" in after["rules"]
    assert after["products"]["product-a"]["ORG-PY-004"] == "unknown"
    diff = client.get("/api/v1/policies/diff?old=1&new=2", headers=headers).json()
    assert diff["added"] == ["ORG-PY-004"]
    assert ("architect", "policy.published") in audit_actions(engine)
    bad = client.post(
        "/api/v1/policies", json={"pack": "no-such-pack", "message": "m"}, headers=headers
    )
    assert bad.status_code == 400 and "neither a bundled pack" in bad.json()["message"]


def test_an_owner_requests_an_evaluation_of_their_product_only(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """An owner queues a manual evaluation of their product (202); of another's, 403."""
    queued = client.post(
        "/api/v1/products/product-a/evaluations", headers=bearer(accounts, "owner-a")
    )
    assert queued.status_code == 202, queued.text
    evaluation_id = queued.json()["evaluation_id"]
    shown = client.get(f"/api/v1/evaluations/{evaluation_id}", headers=bearer(accounts, "viewer"))
    assert shown.json()["status"] == "queued" and shown.json()["trigger"] == "manual"
    refused = client.post(
        "/api/v1/products/product-a/evaluations", headers=bearer(accounts, "owner-b")
    )
    assert refused.status_code == 403
    missing = client.post("/api/v1/products/nope/evaluations", headers=bearer(accounts, "platform"))
    assert missing.status_code == 404
