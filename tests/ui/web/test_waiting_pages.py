"""The owner's start page and the revert button, in-process (TestClient): routing, refusals."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from specfleet.core.db import MergeRequest
from tests.ui.web.conftest import Accounts, ProductWithMergeRequest, login


def test_owner_lands_on_waiting_and_non_green_is_not_one_click(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """An owner's root is "Waiting for me"; an MR whose evidence says no verdict offers review,
    not merge, and posting the one-click action anyway merges nothing."""
    csrf = login(client, "owner-a")
    landing = client.get("/", follow_redirects=False)
    assert landing.status_code == 303 and landing.headers["location"] == "/waiting"
    page = client.get("/waiting").text
    assert "Upgrade pandas to 2.2.3" in page and "unknown" in page and "review it" in page
    assert "Approve and merge all" not in page
    posted = client.post(
        f"/waiting/{with_merge_request.merge_request_id}/approve-merge", data={"csrf_token": csrf}
    )
    assert "not verified green" in posted.text
    assert with_merge_request.forge.get(with_merge_request.merge_request_id).state == "open"
    assert "<th>Verdict</th>" in client.get("/merge-requests").text
    assert "<h1>Fleet</h1>" in client.get("/?view=fleet").text


def test_revert_button_opens_a_revert_merge_request(
    client: TestClient, accounts: Accounts, with_merge_request: ProductWithMergeRequest
) -> None:
    """After a merge the owner sees Revert; one click opens the revert MR; others are refused."""
    forge, mr_id = with_merge_request.forge, with_merge_request.merge_request_id
    forge.approve(mr_id, "owner-a")
    forge.merge(mr_id, "owner-a")
    csrf = login(client, "owner-b")
    refused = client.post(f"/merge-requests/{mr_id}/revert", data={"csrf_token": csrf})
    assert refused.status_code == 403
    csrf = login(client, "owner-a")
    assert "Revert (opens a merge request)" in client.get(f"/merge-requests/{mr_id}").text
    done = client.post(f"/merge-requests/{mr_id}/revert", data={"csrf_token": csrf})
    assert done.status_code == 200 and "Revert !" in done.text
    with Session(forge.engine) as session:
        rows = session.exec(select(MergeRequest).order_by(MergeRequest.id)).all()
    assert [r.state for r in rows] == ["merged", "open"] and rows[1].branch.startswith(
        "specfleet/revert-"
    )
