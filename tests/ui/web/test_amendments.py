"""Asking for a spec amendment from the product page: owners of the product only (issue 11).

The form records the request (who, what) and queues its evaluation; a non-owner, a forged
CSRF token, an empty request or a console without an LLM endpoint change nothing.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import AmendmentRequest, Evaluation
from specfleet.core.settings import get_settings
from specfleet.web.app import create_app
from tests.ui.web.conftest import Accounts, ProductWithMergeRequest, login, settings_for

ASK = "I want to see the number of lines in each order."


@pytest.fixture
def llm_client(
    engine: Engine, specfleet_home, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    """The console with an LLM endpoint configured (nothing is called: workers draft)."""
    settings = settings_for(engine, specfleet_home).model_copy(
        update={"llm_base_url": "http://127.0.0.1:9/v1"}
    )
    get_settings.cache_clear()
    return TestClient(create_app(settings))


def requests_of(engine: Engine) -> list[AmendmentRequest]:
    with Session(engine) as session:
        return list(session.exec(select(AmendmentRequest)).all())


def test_an_owner_asks_and_the_request_is_recorded_and_listed(
    llm_client: TestClient, with_merge_request: ProductWithMergeRequest, engine: Engine
) -> None:
    csrf = login(llm_client, "owner-a")
    page = llm_client.get("/products/product-a").text
    assert "Ask for amendment</button>" in page
    response = llm_client.post(
        "/products/product-a/amendments",
        data={"csrf_token": csrf, "requirement": ASK, "why": "Picking is per line."},
        follow_redirects=False,
    )
    assert response.status_code == 303
    (row,) = requests_of(engine)
    assert (row.requested_by, row.requirement, row.state) == ("owner-a", ASK, "queued")
    with Session(engine) as session:
        evaluation = session.get(Evaluation, row.evaluation_id)
    assert evaluation is not None and evaluation.trigger == "amendment"
    listed = llm_client.get(response.headers["location"]).text
    assert ASK in listed and "queued" in listed and "why: Picking is per line." in listed


def test_a_non_owner_sees_no_form_and_a_direct_post_is_403(
    llm_client: TestClient, with_merge_request: ProductWithMergeRequest, engine: Engine
) -> None:
    expected = {
        "owner-b": "owner-b does not own product product-a",
        "platform": "this needs the owner (of the product) role",
    }
    for name, message in expected.items():
        llm_client.cookies.clear()
        csrf = login(llm_client, name)
        assert "Ask for amendment" not in llm_client.get("/products/product-a").text
        response = llm_client.post(
            "/products/product-a/amendments", data={"csrf_token": csrf, "requirement": ASK}
        )
        assert response.status_code == 403 and message in response.text
    assert requests_of(engine) == []


def test_forged_csrf_empty_request_and_unknown_product_change_nothing(
    llm_client: TestClient, with_merge_request: ProductWithMergeRequest, engine: Engine
) -> None:
    csrf = login(llm_client, "owner-a")
    forged = llm_client.post(
        "/products/product-a/amendments", data={"csrf_token": "forged", "requirement": ASK}
    )
    assert forged.status_code == 403 and "security token" in forged.text
    empty = llm_client.post(
        "/products/product-a/amendments", data={"csrf_token": csrf, "requirement": "  "}
    )
    assert empty.status_code == 400 and "it is empty" in empty.text
    unknown = llm_client.post(
        "/products/nope/amendments", data={"csrf_token": csrf, "requirement": ASK}
    )
    assert unknown.status_code == 404
    assert requests_of(engine) == []


def test_without_an_llm_endpoint_the_form_says_why_and_nothing_is_recorded(
    client: TestClient, with_merge_request: ProductWithMergeRequest, engine: Engine
) -> None:
    csrf = login(client, "owner-a")
    page = client.get("/products/product-a").text
    assert "Ask for amendment</button>" not in page and "no endpoint is configured" in page
    response = client.post(
        "/products/product-a/amendments", data={"csrf_token": csrf, "requirement": ASK}
    )
    assert response.status_code == 400 and "nothing was recorded" in response.text
    assert requests_of(engine) == []


def test_html_in_a_request_is_shown_as_text(
    llm_client: TestClient, with_merge_request: ProductWithMergeRequest
) -> None:
    csrf = login(llm_client, "owner-a")
    hostile = "<script>alert('x')</script> and <b>bold</b>"
    llm_client.post(
        "/products/product-a/amendments", data={"csrf_token": csrf, "requirement": hostile}
    )
    page = llm_client.get("/products/product-a").text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
