"""Products: one product's page (its spec for humans, evaluations, merge requests) and
registration (a form with the spec checked live through HTMX, and file import)."""

from __future__ import annotations

from urllib.parse import quote_plus

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from specfleet.core.errors import ImportFileError, SpecfleetError, SpecInvalid, SpecMissing
from specfleet.core.registry import Registration, SpecReader
from specfleet.web.actions import (
    NO_LLM,
    import_products,
    make_registration,
    onboard_product,
    register_product,
    remove_product,
    request_amendment,
    request_evaluation,
)
from specfleet.web.deps import SignedIn, form_identity, web
from specfleet.web.queries import product_detail
from specfleet.web.roles import allowed, require
from specfleet.web.routers.pages import page

router = APIRouter()


@router.get("/products/{product_id}")
def product_page(request: Request, identity: SignedIn, product_id: str) -> Response:
    context = web(request)
    detail = product_detail(context.engine, context.mirrors, context.specs, product_id)
    return page(
        request,
        "product.html",
        identity,
        detail=detail,
        product=detail.product,
        spec=detail.spec.spec,
        can_evaluate=allowed(identity, "evaluation.request", detail.product.owners),
        can_remove=allowed(identity, "product.remove"),
        can_amend=allowed(identity, "amendment.request", detail.product.owners),
        llm_configured=bool(context.settings.llm_base_url),
        no_llm=NO_LLM,
    )


@router.post("/products/{product_id}/amendments")
async def amend(request: Request, product_id: str) -> Response:
    identity, form = await form_identity(request)
    requirement = form.get("requirement")
    why = form.get("why")
    request_id = request_amendment(
        web(request),
        identity,
        product_id,
        requirement if isinstance(requirement, str) else "",
        why if isinstance(why, str) else None,
    )
    return RedirectResponse(
        f"/products/{product_id}?done=amendment-{request_id}#amendments", status_code=303
    )


@router.post("/products/{product_id}/evaluate")
async def evaluate(request: Request, product_id: str) -> Response:
    identity, _ = await form_identity(request)
    evaluation_id = request_evaluation(web(request), identity, product_id)
    return RedirectResponse(f"/evaluations/{evaluation_id}?done=queued", status_code=303)


@router.post("/products/{product_id}/remove")
async def remove(request: Request, product_id: str) -> Response:
    identity, _ = await form_identity(request)
    remove_product(web(request), identity, product_id)
    return RedirectResponse(f"/products/{product_id}?done=removed", status_code=303)


def registration_from_form(form: FormData) -> Registration:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def items(name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text(name).replace(",", "\n").split() if part)

    branch = text("branch")
    return make_registration(
        repo=text("repo"),
        **({"branch": branch} if branch else {}),  # none given: the repository's default
        spec=text("spec") or "dataproduct.yaml",
        forge=text("forge") or "local",
        project=text("project") or None,
        owners=items("owners"),
        tags=items("tags"),
    )


@router.get("/register")
def register_page(request: Request, identity: SignedIn) -> Response:
    require(identity, "product.register")
    return page(request, "register.html", identity)


@router.post("/register/check")
async def register_check(request: Request) -> Response:
    """HTMX: read the spec at the repository, branch and path in the form; show its problems."""
    identity, form = await form_identity(request)
    require(identity, "product.register")
    problems: list[str] = []
    facts = None
    try:
        registration = registration_from_form(form)
        facts = SpecReader(web(request).mirrors).resolve(registration).spec
    except SpecInvalid as error:
        problems = [problem.render() for problem in error.problems[:50]]
    except SpecfleetError as error:
        problems = [str(error)]
    return page(request, "_spec_check.html", identity, problems=problems, facts=facts)


@router.post("/register")
async def register(request: Request) -> Response:
    identity, form = await form_identity(request)
    registration = registration_from_form(form)
    try:
        result = register_product(web(request), identity, registration)
    except SpecMissing:
        if form.get("onboard") != "yes":
            raise
        onboarding = onboard_product(web(request), identity, registration)
        done = quote_plus(f"onboarding merge request {onboarding.url}")
        return RedirectResponse(f"/products/{onboarding.product_id}?done={done}", status_code=303)
    return RedirectResponse(f"/products/{result.product_id}?done={result.status}", status_code=303)


@router.post("/register/import")
async def import_file(request: Request) -> Response:
    identity, form = await form_identity(request)
    require(identity, "product.register")
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ImportFileError("choose a .csv, .yaml or .yml registration file to import")
    data = await upload.read()
    report = import_products(web(request), identity, upload.filename, data)
    status = 200 if not report.failed else 422
    return page(request, "import_report.html", identity, status_code=status, report=report)
