"""The console's pages: sign-in, CSRF, escaping, the merge-request flow, registration,
policies and evaluations, rendered through FastAPI's TestClient on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import (
    AuditEntry,
    ComplianceRecord,
    Evaluation,
    LLMCall,
    MergeRequest,
    Product,
    Proposal,
    StageResult,
    session_scope,
)
from specfleet.core.windows import iso_week
from tests.ui.web.conftest import Accounts, ProductWithMergeRequest, csrf_of, login

SCRIPT = "<script>alert(1)</script>"


def test_pages_send_strangers_to_the_login_page(client: TestClient) -> None:
    """Without a session every page redirects to /login, remembering where it was going."""
    for path in ("/", "/products/x", "/merge-requests/1", "/policies", "/register"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=" + path.split("?")[0])


def test_a_wrong_password_is_refused_readably(client: TestClient, accounts: Accounts) -> None:
    """A wrong password shows the form again with a message (401) and no session."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"name": "viewer", "password": "nope", "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "Unknown account or wrong password." in response.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_redirect_never_leaves_the_site(client: TestClient, accounts: Accounts) -> None:
    """A next= pointing at another host is replaced by the fleet page (no open redirect)."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={
            "name": "viewer",
            "password": "correct horse battery",
            "csrf_token": csrf_of(form.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_session_cookie_is_httponly_and_samesite(client: TestClient, accounts: Accounts) -> None:
    """The session cookie cannot be read by scripts and is not sent on cross-site posts."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={
            "name": "viewer",
            "password": "correct horse battery",
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_a_forged_csrf_token_is_403_and_nothing_changes(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """An approval posted with a wrong or missing CSRF token is refused; no approval is kept."""
    login(client, "owner-a")
    mr = with_merge_request.merge_request_id
    for data in ({"csrf_token": "forged"}, {}):
        response = client.post(f"/merge-requests/{mr}/approve", data=data)
        assert response.status_code == 403
        assert "security token" in response.text
    with Session(engine) as session:
        row = session.get(MergeRequest, mr)
    assert row is not None and row.approvals == []


def test_html_in_a_product_name_is_shown_escaped(
    client: TestClient, accounts: Accounts, engine: Engine
) -> None:
    """A product named <script>...</script> appears as text on the fleet and product pages."""
    with session_scope(engine) as session:
        session.add(
            Product(id="evil", name=SCRIPT, repo_url="/x", owners=["a@example.com"], tags=["t"])
        )
    login(client, "viewer")
    for path in ("/", "/products/evil"):
        page = client.get(path).text
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_in_a_merge_request_description_is_not_executed(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """Raw HTML and javascript: links in a description render as text, never as markup."""
    mr = with_merge_request.merge_request_id
    with session_scope(engine) as session:
        row = session.get(MergeRequest, mr)
        assert row is not None
        row.description = (
            f"{SCRIPT}\n\n[click](javascript:alert(1))\n\n<img src=x onerror=alert(1)>"
        )
        session.add(row)
    login(client, "viewer")
    page = client.get(f"/merge-requests/{mr}").text
    assert SCRIPT not in page and "<img src=x" not in page
    assert 'href="javascript:' not in page


def test_owner_approves_and_merges_from_the_merge_request_page(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """The owner sees the verification tables and the diff, approves, merges, and the product
    page lists the merge request as merged."""
    csrf = login(client, "owner-a")
    mr = with_merge_request.merge_request_id
    page = client.get(f"/merge-requests/{mr}").text
    assert "<table>" in page and "<td>build and tests</td>" in page
    assert 'class="highlight"' in page and "pandas==2.2.3" in page
    assert "Approve</button>" in page
    approved = client.post(f"/merge-requests/{mr}/approve", data={"csrf_token": csrf})
    assert approved.status_code == 200 and "Done: approved." in approved.text
    merged = client.post(f"/merge-requests/{mr}/merge", data={"csrf_token": csrf})
    assert merged.status_code == 200 and 'id="mr-state">merged<' in merged.text
    product_page = client.get("/products/product-a").text
    assert ">merged</span>" in product_page
    with Session(engine) as session:
        actions = [row.action for row in session.exec(select(AuditEntry)).all()]
    assert "mr.approve" in actions and "mr.merge" in actions


def test_owner_of_another_product_sees_no_buttons_and_gets_403(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """owner-b reads product A's merge request, has no buttons, and a direct POST is 403."""
    csrf = login(client, "owner-b")
    mr = with_merge_request.merge_request_id
    page = client.get(f"/merge-requests/{mr}").text
    assert "Approve</button>" not in page
    assert "Only the product's owners" in page
    response = client.post(f"/merge-requests/{mr}/approve", data={"csrf_token": csrf})
    assert response.status_code == 403
    assert "owner-b does not own product product-a" in response.text
    with Session(engine) as session:
        row = session.get(MergeRequest, mr)
    assert row is not None and row.state == "open" and row.approvals == []


def test_unknown_product_and_evaluation_are_readable_404s(
    client: TestClient, accounts: Accounts
) -> None:
    """A product or evaluation that does not exist: 404 with a sentence saying which."""
    login(client, "viewer")
    product = client.get("/products/ghost")
    assert product.status_code == 404 and "no product &#39;ghost&#39; is registered" in product.text
    evaluation = client.get("/evaluations/12345")
    assert evaluation.status_code == 404 and "no evaluation 12345" in evaluation.text


def test_fleet_counts_and_filters(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """The fleet page counts products and open merge requests, and filters by owner and tag."""
    login(client, "viewer")
    page = client.get("/").text
    assert "<strong>2</strong> products" in page
    assert "<strong>1</strong> open merge requests" in page
    mine = client.get("/", params={"owner": "owner-b@example.com"}).text
    assert "Product B" in mine and "Product product-a" not in mine
    tagged = client.get("/", params={"tag": "finance"}).text
    assert "Product product-a" in tagged and "Product B" not in tagged


def test_product_page_renders_the_spec_for_humans(
    client: TestClient, accounts: Accounts, orders_repo: Path
) -> None:
    """After registration, the product page shows purpose, each column's why, requirements
    with their tests and the amendment timeline, read from the repository."""
    csrf = login(client, "platform")
    response = client.post(
        "/register",
        data={"csrf_token": csrf, "repo": str(orders_repo), "branch": "main"},
    )
    assert response.status_code == 200, response.text
    page = response.text
    assert "Done: added." in page
    for heading in ("Purpose", "Outputs", "Why it exists", "Requirements", "Amendments"):
        assert heading in page
    assert "R1" in page and "A1" in page


def test_live_spec_check_names_the_problem(
    client: TestClient, accounts: Accounts, make_repo, engine: Engine
) -> None:
    """The HTMX check of a broken spec lists file:line problems, and registering it is 422."""
    spec = (Path(__file__).resolve().parents[3] / "examples/orders/dataproduct.yaml").read_text()
    broken = make_repo({"dataproduct.yaml": spec.replace("spec_version: 1", "spec_version: 7")})
    csrf = login(client, "platform")
    fragment = client.post(
        "/register/check",
        data={"csrf_token": csrf, "repo": str(broken)},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "cannot be registered" in fragment.text and "spec_version" in fragment.text
    response = client.post("/register", data={"csrf_token": csrf, "repo": str(broken)})
    assert response.status_code == 422 and "spec_version" in response.text
    with Session(engine) as session:
        assert session.exec(select(Product)).all() == []


def test_registration_needs_the_platform_role(client: TestClient, accounts: Accounts) -> None:
    """A viewer cannot open the registration page or post to it (403, readable)."""
    csrf = login(client, "viewer")
    assert client.get("/register").status_code == 403
    response = client.post("/register", data={"csrf_token": csrf, "repo": "/x"})
    assert response.status_code == 403 and "platform role" in response.text


def test_a_malformed_import_file_is_refused_on_the_page(
    client: TestClient, accounts: Accounts
) -> None:
    """Uploading a CSV without a header row: 400 with the file's own name and line."""
    csrf = login(client, "platform")
    response = client.post(
        "/register/import",
        data={"csrf_token": csrf},
        files={"file": ("fleet.csv", b"", "text/csv")},
    )
    assert response.status_code == 400
    assert "fleet.csv:1: empty file" in response.text


def test_architect_publishes_and_the_matrix_changes(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """Publishing v1 then v2 from the policies page adds ORG-PY-004 to the compliance matrix."""
    csrf = login(client, "architect")
    first = client.post(
        "/policies/publish", data={"csrf_token": csrf, "pack": "v1", "message": "a"}
    )
    assert "Done: published v1." in first.text and "ORG-PY-004" not in first.text
    second = client.post(
        "/policies/publish", data={"csrf_token": csrf, "pack": "v2", "message": "b"}
    )
    assert "Done: published v2." in second.text and "ORG-PY-004" in second.text
    policies = client.get("/policies").text
    assert "v2" in policies and 'id="policy-diff"' in policies and "ORG-PY-004" in policies


def test_rule_page_draws_the_rollout(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """A rule's page has an inline SVG chart with its weekly passing and failing counts."""
    csrf = login(client, "architect")
    client.post("/policies/publish", data={"csrf_token": csrf, "pack": "v2", "message": "b"})
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        for product, status in (("product-a", "pass"), ("product-b", "fail")):
            session.add(
                ComplianceRecord(
                    product_id=product,
                    policy_set_version=1,
                    rule_id="ORG-PY-004",
                    status=status,
                    window=iso_week(now.date()),
                    checked_at=now,
                )
            )
    page = client.get("/policies/rules/ORG-PY-004").text
    assert "<svg" in page and "series-passing" in page
    assert f"{iso_week(now.date())}: 1 passing" in page
    matrix = client.get("/policies/compliance").text
    assert 'class="fail">✗' in matrix and 'class="pass">✓' in matrix
    assert client.get("/policies/rules/NOPE-1").status_code == 404


def test_evaluation_page_shows_stages_report_and_llm_usage(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """An evaluation's stages with timings, its merge request's tables and its LLM cost."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        evaluation = Evaluation(
            product_id="product-a",
            window=iso_week(now.date()),
            trigger="weekly",
            status="done",
            outcome="published",
            started_at=now,
            finished_at=now + dt.timedelta(seconds=42),
        )
        session.add(evaluation)
        session.flush()
        session.add(
            StageResult(
                evaluation_id=evaluation.id, stage="verify", outcome="ok", duration_ms=31_500
            )
        )
        session.add(
            LLMCall(
                product_id="product-a",
                window=evaluation.window,
                evaluation_id=evaluation.id,
                model="gpt-4o-mini",
                prompt_tokens=1200,
                completion_tokens=300,
                cost_usd=0.0123,
            )
        )
        proposal = Proposal(
            product_id="product-a", evaluation_id=evaluation.id, key="key-product-a", title="p"
        )
        session.add(proposal)
        session.flush()
        row = session.get(MergeRequest, with_merge_request.merge_request_id)
        assert row is not None
        row.proposal_id = proposal.id
        session.add(row)
        evaluation_id = evaluation.id
    login(client, "viewer")
    page = client.get(f"/evaluations/{evaluation_id}").text
    assert "verify" in page and "31.5 s" in page
    assert "<td>build and tests</td>" in page
    assert "gpt-4o-mini" in page and "$0.0123" in page
    assert "pandas==2.2.3" in page  # the diff
    fleet = client.get("/").text
    assert "published" in fleet and "42.0 s" in fleet


def test_gitlab_merge_requests_link_out_and_show_their_state(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """A GitLab merge request links to GitLab (only an http(s) URL), shows its state, has no
    buttons, and approving it here is refused (409) with where to do it."""
    with session_scope(engine) as session:
        good = MergeRequest(
            product_id="product-a",
            forge="gitlab",
            url="https://gitlab.example.com/data/a/-/merge_requests/7",
            title="On GitLab",
            state="open",
        )
        bad = MergeRequest(
            product_id="product-a",
            forge="gitlab",
            url="javascript:alert(1)",
            title="Odd URL",
            state="merged",
        )
        session.add(good)
        session.add(bad)
        session.flush()
        good_id, bad_id = good.id, bad.id
    csrf = login(client, "owner-a")
    page = client.get(f"/merge-requests/{good_id}").text
    assert 'href="https://gitlab.example.com/data/a/-/merge_requests/7"' in page
    assert "Approve</button>" not in page and "<strong>open</strong>" in page
    odd = client.get(f"/merge-requests/{bad_id}").text
    assert "javascript:" not in odd and "<strong>merged</strong>" in odd
    refused = client.post(f"/merge-requests/{good_id}/approve", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "lives on gitlab" in refused.text


def test_signing_out_ends_the_session(client: TestClient, accounts: Accounts) -> None:
    """Sign out (a CSRF-checked POST) drops the cookie: the next page asks for a sign-in."""
    csrf = login(client, "viewer")
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_sign_in_without_the_forms_token_is_refused(
    client: TestClient, accounts: Accounts
) -> None:
    """A sign-in posted from elsewhere (no token from the login form) is 403, no session."""
    response = client.post(
        "/login",
        data={"name": "viewer", "password": "correct horse battery", "csrf_token": "x"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_needs_human_evaluation_shows_reason_action_and_report(
    client: TestClient,
    accounts: Accounts,
    with_merge_request: ProductWithMergeRequest,
    engine: Engine,
) -> None:
    """No proposal carries the report of a needs-human evaluation: page and API show it."""
    from tests.ui.web.conftest import bearer

    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        evaluation = Evaluation(
            product_id="product-a",
            window=iso_week(now.date()),
            trigger="weekly",
            status="done",
            outcome="needs-human",
            started_at=now,
            finished_at=now,
            summary={
                "reason": "the current implementation does not build (exit 1): dbt failed in "
                "model daily_revenue (models/marts/daily_revenue.sql)",
                "action": "fix the build on the default branch",
                "verification": "**Verification: not publishable.**\n\n| layer | result |",
            },
        )
        session.add(evaluation)
        session.flush()
        evaluation_id = evaluation.id
    login(client, "viewer")
    page = client.get(f"/evaluations/{evaluation_id}").text
    assert "Needs a person because" in page and "model daily_revenue" in page
    assert "What you can do" in page and "fix the build on the default branch" in page
    assert "Verification: not publishable." in page
    shown = client.get(f"/api/v1/evaluations/{evaluation_id}", headers=bearer(accounts, "viewer"))
    body = shown.json()
    assert "model daily_revenue" in body["reason"]
    assert body["action"] == "fix the build on the default branch"
    assert body["verification"].startswith("**Verification: not publishable.**")


def test_the_register_form_onboards_a_dbt_repository_without_spec(
    client: TestClient, accounts: Accounts, make_repo, tmp_path: Path
) -> None:
    """Branch left empty means the repository's default; the onboarding box opens the merge
    request and the product page says where it is."""
    from tests.ui.test_cli_spec_init import dbt_project_without_spec

    repo = make_repo(source=dbt_project_without_spec(tmp_path), name="shop", branch="trunk")
    csrf = login(client, "platform")
    form = client.get("/register").text
    assert 'name="onboard"' in form and 'value="main"' not in form
    refused = client.post("/register", data={"csrf_token": csrf, "repo": str(repo), "branch": ""})
    assert refused.status_code == 422 and "no such file" in refused.text
    response = client.post(
        "/register",
        data={"csrf_token": csrf, "repo": str(repo), "branch": "", "onboard": "yes"},
    )
    assert response.status_code == 200, response.text
    assert "shop_marts" in response.text
    assert "onboarding merge request specfleet://shop_marts/merge_requests/" in response.text
