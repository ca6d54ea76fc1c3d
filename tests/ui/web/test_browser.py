"""The console in a real browser: Debian's chromium driven by Playwright against
``specfleet web`` running as its own process (uvicorn) on a free port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from specfleet.core.db import ensure_schema, make_engine
from specfleet.policies.packs import load_pack
from specfleet.policies.store import publish
from specfleet.web.auth import create_account
from tests.conftest import REPO_ROOT
from tests.support.web_process import specfleet_web
from tests.ui.web.conftest import OWNER_A, OWNER_B, PASSWORD, open_merge_request

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Console:
    url: str
    merge_request_id: int


@pytest.fixture
def console(specfleet_home: Path, tmp_path: Path) -> Iterator[Console]:
    """Accounts, a product with an open merge request, policy set v1, and the server."""
    database_url = f"sqlite:///{specfleet_home / 'specfleet.db'}"
    engine = make_engine(database_url)
    ensure_schema(engine)
    create_account(engine, "olivia", "owner", [OWNER_A], PASSWORD, "setup")
    create_account(engine, "bruno", "owner", [OWNER_B], PASSWORD, "setup")
    create_account(engine, "ada", "architect", [], PASSWORD, "setup")
    create_account(engine, "pia", "platform", [], PASSWORD, "setup")
    _, merge_request_id, _ = open_merge_request(
        engine, specfleet_home, tmp_path / "sources", "product-a", [OWNER_A]
    )
    publish(engine, load_pack(REPO_ROOT / "policies/pack/v1"), "first pack", "setup")
    engine.dispose()
    # an endpoint, so owners get the amendment form (the console never calls it)
    llm = {"SPECFLEET_LLM_BASE_URL": "http://127.0.0.1:9/v1"}
    with specfleet_web(specfleet_home, database_url, llm) as web:
        yield Console(web.url, merge_request_id)


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "chromium is not installed (Debian package 'chromium'); the browser tests need it"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def sign_in(page: Page, console: Console, path: str, name: str) -> None:
    """Open ``path``; the console asks for a sign-in first, then shows the page."""
    page.goto(console.url + path)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Account").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.url + path)


def test_owner_reviews_approves_and_merges(browser: Browser, console: Console) -> None:
    """The owner opens the merge request, sees its verification tables, approves, merges, and
    the product page shows the merge."""
    page = browser.new_page()
    mr_path = f"/merge-requests/{console.merge_request_id}"
    sign_in(page, console, mr_path, "olivia")
    expect(page.get_by_role("heading", name="Upgrade pandas to 2.2.3")).to_be_visible()
    verification = page.locator("#description table").first
    expect(verification).to_contain_text("build and tests")
    expect(verification).to_contain_text("contract compatibility")
    expect(page.locator(".highlight")).to_contain_text("pandas==2.2.3")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text("Done: approved.")
    expect(page.locator("#mr-approvals")).to_have_text("olivia")
    page.get_by_role("button", name="Merge").click()
    expect(page.locator("#mr-state")).to_have_text("merged")
    page.get_by_role("link", name="Product product-a").click()
    row = page.locator("#merge-requests tbody tr").first
    expect(row).to_contain_text("Upgrade pandas to 2.2.3")
    expect(row).to_contain_text("merged")
    page.close()


def test_owner_of_another_product_is_refused(browser: Browser, console: Console) -> None:
    """Another product's owner sees no buttons, and posting the approval anyway is a 403."""
    context = browser.new_context()
    page = context.new_page()
    mr_path = f"/merge-requests/{console.merge_request_id}"
    sign_in(page, console, mr_path, "bruno")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_text("Only the product's owners")).to_be_visible()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = context.request.post(
        f"{console.url}{mr_path}/approve", form={"csrf_token": csrf or ""}
    )
    assert response.status == 403
    assert "bruno does not own product product-a" in response.text()
    page.reload()
    expect(page.locator("#mr-approvals")).to_have_text("none yet")
    context.close()


def test_architect_publishes_and_sees_the_matrix_change(browser: Browser, console: Console) -> None:
    """The architect publishes pack v2 and the compliance matrix gains the ORG-PY-004 column."""
    page = browser.new_page()
    sign_in(page, console, "/policies/compliance", "ada")
    matrix = page.locator("#compliance-matrix")
    expect(matrix).to_contain_text("ORG-SEC-001")
    expect(matrix).not_to_contain_text("ORG-PY-004")
    page.goto(console.url + "/policies")
    page.get_by_label("Pack").select_option("v2")
    page.get_by_label("Message (why this version)").fill("Python 3.11 everywhere")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_have_text("Done: published v2.")
    expect(page.locator("#compliance-matrix")).to_contain_text("ORG-PY-004")
    expect(page.get_by_role("heading", level=1)).to_contain_text("policy set v2")
    page.close()


def test_platform_registers_with_the_spec_checked_live(
    browser: Browser, console: Console, make_repo
) -> None:
    """Typing a repository shows its spec's problems (HTMX), a valid one is named, and
    registering it opens the product page with its spec rendered."""
    spec = (REPO_ROOT / "examples/orders/dataproduct.yaml").read_text()
    broken = make_repo({"dataproduct.yaml": spec.replace("spec_version: 1", "spec_version: 7")})
    good = make_repo(source=REPO_ROOT / "examples" / "orders", name="orders")
    page = browser.new_page()
    sign_in(page, console, "/register", "pia")
    repository = page.get_by_label("Repository (URL or path on the server)")
    repository.fill(str(broken))
    repository.blur()
    expect(page.locator("#spec-check")).to_contain_text("cannot be registered")
    expect(page.locator("#spec-check")).to_contain_text("spec_version")
    repository.fill(str(good))
    repository.blur()
    expect(page.locator("#spec-check")).to_contain_text("Valid spec")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("status")).to_have_text("Done: added.")
    expect(page.get_by_role("heading", name="Purpose")).to_be_visible()
    page.close()


def test_owner_asks_for_an_amendment_and_another_owner_cannot(
    browser: Browser, console: Console
) -> None:
    """The owner's request is listed as queued; another product's owner has no form and a
    forged post from their session is a 403 that records nothing."""
    page = browser.new_page()
    sign_in(page, console, "/products/product-a", "olivia")
    form = page.locator("#amend-form")
    form.get_by_label("What do you need?").fill("I want to see the number of lines in each order.")
    form.get_by_label("Why?").fill("Picking is planned per line.")
    form.get_by_role("button", name="Ask for amendment").click()
    row = page.locator("#amendment-requests tbody tr").first
    expect(row).to_contain_text("I want to see the number of lines in each order.")
    expect(row).to_contain_text("queued")
    expect(row).to_contain_text("olivia")
    page.close()

    context = browser.new_context()
    other = context.new_page()
    sign_in(other, console, "/products/product-a", "bruno")
    expect(other.locator("#amend-form")).to_have_count(0)
    csrf = other.locator("input[name=csrf_token]").first.get_attribute("value")
    response = context.request.post(
        f"{console.url}/products/product-a/amendments",
        form={"csrf_token": csrf or "", "requirement": "Drop order_amount."},
    )
    assert response.status == 403
    assert "bruno does not own product product-a" in response.text()
    other.reload()
    expect(other.locator("#amendment-requests tbody tr")).to_have_count(1)
    context.close()
