"""The owner's start page in a real browser (Debian's chromium via Playwright, ``specfleet
web`` as its own process): three verified-green merge requests merged with two clicks, and a
needs-human outcome shown with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlmodel import Session, select

from specfleet.core.db import (
    Evaluation,
    MergeRequest,
    Product,
    ensure_schema,
    make_engine,
    session_scope,
)
from specfleet.web.auth import create_account
from tests.support.web_process import specfleet_web
from tests.ui.web.conftest import PASSWORD, open_merge_request
from tests.ui.web.test_browser import Console, browser, sign_in  # noqa: F401

pytestmark = pytest.mark.browser

WANDA = "wanda@example.com"
NICK = "nick@example.com"
NEEDS_HUMAN_REASON = "the candidate is not verified green: the candidate's tests failed"
GREEN = """specfleet proposes this change to **{name}**: 1 dependency upgraded.

## Why now

| what | this evaluation |
| --- | --- |
| trigger | a newly published policy set |

## Policy rules new since the last merged proposal

No proposal of this product was merged yet, so every rule that applies is new.

| rule | severity | kind | title | this change |
| --- | --- | --- | --- | --- |
| ORG-SEC-001 | high | dependency | No known-vulnerable dependencies | resolves its findings |

## Verification

**Verification: passed.** The candidate builds, passes its tests, keeps every output's contract and data, and honours every failure mode.

### Output contracts

Every output (orders) matches the spec and the baseline.

### Data on the fixtures

| output | baseline rows | candidate rows | only in baseline | only in candidate | changed rows | changed columns |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
| orders | 12 | 12 | 0 | 0 | 0 | - |

## LLM usage

none — deterministic remediators
"""


@pytest.fixture
def console(specfleet_home: Path, tmp_path: Path) -> Iterator[Console]:
    """wanda owns three products with verified-green merge requests; nick owns one whose
    latest evaluation needs a human."""
    database_url = f"sqlite:///{specfleet_home / 'specfleet.db'}"
    engine = make_engine(database_url)
    ensure_schema(engine)
    create_account(engine, "wanda", "owner", [WANDA], PASSWORD, "setup")
    create_account(engine, "nick", "owner", [NICK], PASSWORD, "setup")
    first = 0
    for name in ("alpha", "beta", "gamma"):
        _, merge_request_id, _ = open_merge_request(
            engine, specfleet_home, tmp_path / "sources", name, [WANDA]
        )
        first = first or merge_request_id
        with session_scope(engine) as session:
            row = session.get(MergeRequest, merge_request_id)
            assert row is not None
            row.description = GREEN.format(name=name)
            session.add(row)
    with session_scope(engine) as session:
        session.add(Product(id="delta", name="Delta", repo_url="/nowhere", owners=[NICK]))
        session.flush()
        session.add(
            Evaluation(
                product_id="delta",
                window="2026-W49",
                trigger="weekly",
                status="done",
                outcome="needs-human",
                summary={"reason": NEEDS_HUMAN_REASON},
            )
        )
    engine.dispose()
    with specfleet_web(specfleet_home, database_url) as web:
        yield Console(web.url, first)


def test_owner_merges_three_verified_green_merge_requests_with_two_clicks(
    browser: Browser,  # noqa: F811
    console: Console,
    specfleet_home: Path,
) -> None:
    """The start page lists the three with their verdict, rule, size and contract/data result;
    "approve and merge all" shows a confirmation listing them; confirming merges all three."""
    page = browser.new_page()
    sign_in(page, console, "/waiting", "wanda")
    rows = page.locator("#waiting tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("verified green")
    expect(rows.first).to_contain_text("ORG-SEC-001 (high)")
    expect(rows.first).to_contain_text("1 file, +1 -1")
    expect(rows.first).to_contain_text("contract identical / data identical")

    page.get_by_role("link", name="Approve and merge all verified green (3)").click()  # 1
    listed = page.locator("#confirm-list li")
    expect(listed).to_have_count(3)
    expect(page.locator("#confirm-list")).to_contain_text("alpha")
    expect(page.locator("#confirm-list")).to_contain_text("gamma")
    page.get_by_role("button", name="Yes, approve and merge these 3").click()  # 2

    expect(page.get_by_role("status")).to_contain_text("approved and merged")
    expect(page.locator("#waiting")).to_contain_text("No merge request is waiting for you.")
    engine = make_engine(f"sqlite:///{specfleet_home / 'specfleet.db'}")
    with Session(engine) as session:
        rows_after = session.exec(select(MergeRequest)).all()
    engine.dispose()
    assert {(r.product_id, r.state, tuple(r.approvals)) for r in rows_after} == {
        (name, "merged", ("wanda",)) for name in ("alpha", "beta", "gamma")
    }
    page.close()


def test_owner_with_a_needs_human_outcome_sees_why(browser: Browser, console: Console) -> None:  # noqa: F811
    """Signing in at the console's root lands an owner on their start page, which says why
    their product needs a human and links the evaluation."""
    page = browser.new_page()
    page.goto(console.url + "/")
    page.get_by_label("Account").fill("nick")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(console.url + "/waiting")
    expect(page.locator("#waiting")).to_contain_text("No merge request is waiting for you.")
    needs = page.locator("#needs-human")
    expect(needs).to_contain_text("delta")
    expect(needs).to_contain_text(NEEDS_HUMAN_REASON)
    expect(needs.get_by_role("link", name="read evaluation 1")).to_be_visible()
    page.close()
