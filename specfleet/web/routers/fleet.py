"""The fleet page: every product, its last evaluation, open merge request and compliance."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from specfleet.web.deps import SignedIn, web
from specfleet.web.queries import fleet
from specfleet.web.routers.pages import page
from specfleet.worker.pipeline.deferral import deferred_proposals

router = APIRouter()
PAGE_SIZE = 200


@router.get("/")
def fleet_page(
    request: Request,
    identity: SignedIn,
    owner: str | None = None,
    tag: str | None = None,
    outcome: str | None = None,
    page_number: int = 1,
    view: str | None = None,
) -> Response:
    if identity.role == "owner" and view is None and not (owner or tag or outcome):
        return RedirectResponse("/waiting", status_code=303)  # an owner's start page
    view = fleet(web(request).engine, owner or None, tag or None, outcome or None)
    pages = max(1, -(-view.total // PAGE_SIZE))
    number = min(max(page_number, 1), pages)
    rows = view.rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    return page(
        request,
        "fleet.html",
        identity,
        fleet=view,
        rows=rows,
        owner=owner or "",
        tag=tag or "",
        outcome=outcome or "",
        page_number=number,
        pages=pages,
        deferred=deferred_proposals(web(request).engine),
    )
