"""The evaluation page: stages with timings, the verification report, the diff, LLM usage."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from specfleet.core.errors import SpecfleetError
from specfleet.web.deps import NotFound, RowId, SignedIn, web
from specfleet.web.queries import evaluation_detail
from specfleet.web.render import highlighted_diff
from specfleet.web.routers.pages import page

router = APIRouter()


@router.get("/evaluations/{evaluation_id}")
def evaluation_page(request: Request, identity: SignedIn, evaluation_id: RowId) -> Response:
    context = web(request)
    detail = evaluation_detail(context.engine, evaluation_id)
    if detail is None:
        raise NotFound(f"no evaluation {evaluation_id}")
    diff_html = None
    diff_problem = None
    mr = detail.merge_request
    if mr is not None and mr.forge == "local" and mr.id is not None:
        try:
            diff_html = highlighted_diff(context.forge.diff(mr.id))
        except SpecfleetError as error:
            diff_problem = str(error)
    summary = detail.evaluation.summary or {}
    report = (
        (mr.description if mr is not None else None)
        or (detail.proposal.description if detail.proposal is not None else "")
        # needs-human: no proposal, but the report the decision rests on
        or str(summary.get("verification") or "")
    )
    return page(
        request,
        "evaluation.html",
        identity,
        detail=detail,
        report=report,
        diff_html=diff_html,
        diff_problem=diff_problem,
    )
