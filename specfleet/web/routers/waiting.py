""" "Waiting for me", an owner's start page: open merge requests across their products with
the verdict, the new rules each answers, the size of the change and the contract/data result;
needs-human outcomes with the reason; deferred proposals. One click approves and merges a
verified-green merge request; the bulk action asks for a confirmation listing them first."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from specfleet.core.errors import InputError
from specfleet.web.actions import revert_merge_request
from specfleet.web.deps import RowId, SignedIn, form_identity, web
from specfleet.web.routers.pages import page
from specfleet.web.waiting import approve_and_merge, waiting_for

router = APIRouter()
MAX_BULK = 200


@router.get("/waiting")
def waiting_page(request: Request, identity: SignedIn) -> Response:
    view = waiting_for(web(request), identity)
    return page(request, "waiting.html", identity, view=view)


@router.get("/waiting/confirm")
def confirm_page(request: Request, identity: SignedIn) -> Response:
    """The confirmation listing every verified-green merge request the bulk action would take."""
    view = waiting_for(web(request), identity)
    return page(request, "waiting_confirm.html", identity, view=view)


@router.post("/waiting/{merge_request_id}/approve-merge")
async def approve_merge_one(request: Request, merge_request_id: RowId) -> Response:
    identity, _form = await form_identity(request)
    said = approve_and_merge(web(request), identity, [merge_request_id])
    return _back(said)


@router.post("/waiting/approve-merge-all")
async def approve_merge_all(request: Request) -> Response:
    """Approve and merge exactly the merge requests the confirmation listed (each re-checked)."""
    identity, form = await form_identity(request)
    ids: list[int] = []
    for value in form.getlist("merge_request"):
        if not isinstance(value, str) or not value.isdigit() or len(ids) >= MAX_BULK:
            raise InputError(f"merge_request: expected at most {MAX_BULK} ids, got {value!r}")
        ids.append(int(value))
    if not ids:
        raise InputError("merge_request: nothing was confirmed")
    said = approve_and_merge(web(request), identity, ids)
    return _back(said)


@router.post("/merge-requests/{merge_request_id}/revert")
async def revert(request: Request, merge_request_id: RowId) -> Response:
    """One click: a merge request reverting this merged one (an automerge or any merge)."""
    identity, _form = await form_identity(request)
    opened = revert_merge_request(web(request), identity, merge_request_id)
    return RedirectResponse(f"/merge-requests/{opened}?done=revert+opened", status_code=303)


def _back(said: list[str]) -> Response:
    query = urlencode({"done": "; ".join(said)[:1500]})
    return RedirectResponse(f"/waiting?{query}", status_code=303)
