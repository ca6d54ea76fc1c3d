"""Merge requests: the list, one merge request (description, diff, verification) and the
owners' Approve / Merge / Close buttons (local forge; GitLab ones link out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from specfleet.core.errors import SpecfleetError
from specfleet.web.actions import MergeAction, act_on_merge_request
from specfleet.web.deps import RowId, SignedIn, form_identity, web
from specfleet.web.queries import list_merge_requests, merge_request_detail
from specfleet.web.render import highlighted_diff
from specfleet.web.roles import allowed
from specfleet.web.routers.pages import page
from specfleet.worker.review import review_facts

router = APIRouter()


@router.get("/merge-requests")
def merge_requests_page(
    request: Request,
    identity: SignedIn,
    state: str = "open",
    product: str | None = None,
) -> Response:
    rows = list_merge_requests(
        web(request).engine, product or None, None if state == "all" else state
    )
    verdicts = {row.id: review_facts(row.description, labels=row.labels).verdict for row in rows}
    return page(
        request,
        "merge_requests.html",
        identity,
        rows=rows,
        verdicts=verdicts,
        state=state,
        product=product or "",
    )


@router.get("/merge-requests/{merge_request_id}")
def merge_request_page(request: Request, identity: SignedIn, merge_request_id: RowId) -> Response:
    context = web(request)
    detail = merge_request_detail(context.engine, merge_request_id)
    row = detail.merge_request
    diff_html = None
    diff_problem = None
    if row.forge == "local":
        try:
            diff_html = highlighted_diff(context.forge.diff(merge_request_id))
        except SpecfleetError as error:
            diff_problem = str(error)
    owners = detail.product.owners if detail.product is not None else []
    return page(
        request,
        "merge_request.html",
        identity,
        detail=detail,
        mr=row,
        diff_html=diff_html,
        diff_problem=diff_problem,
        can_act=allowed(identity, "mr.act", owners) and row.forge == "local",
    )


async def _act(request: Request, merge_request_id: RowId, action: MergeAction) -> Response:
    identity, _form = await form_identity(request)
    act_on_merge_request(web(request), identity, merge_request_id, action)
    done = {"approve": "approved", "merge": "merged", "close": "closed"}[action]
    return RedirectResponse(f"/merge-requests/{merge_request_id}?done={done}", status_code=303)


@router.post("/merge-requests/{merge_request_id}/approve")
async def approve(request: Request, merge_request_id: RowId) -> Response:
    return await _act(request, merge_request_id, "approve")


@router.post("/merge-requests/{merge_request_id}/merge")
async def merge(request: Request, merge_request_id: RowId) -> Response:
    return await _act(request, merge_request_id, "merge")


@router.post("/merge-requests/{merge_request_id}/close")
async def close(request: Request, merge_request_id: RowId) -> Response:
    return await _act(request, merge_request_id, "close")
