"""The web console and JSON API application: ``create_app(settings)`` wires everything once.

Pages are server-rendered Jinja2 (autoescaped) with HTMX for the interactive parts; the API
lives under ``/api/v1`` with its OpenAPI document at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from specfleet.core.db import ensure_schema, make_engine
from specfleet.core.errors import SpecfleetError
from specfleet.core.forges.local import LocalForge
from specfleet.core.git import MirrorCache
from specfleet.core.repo_allow import RepoAllowList, default_allow_text
from specfleet.core.settings import Settings
from specfleet.web import render
from specfleet.web.auth import SessionSource, TokenSource, secret_key
from specfleet.web.deps import (
    LoginRequired,
    WebContext,
    api_identity,
    error_body,
    page_identity,
    status_for,
)
from specfleet.web.middleware import BodyGuard, BodyLimits, SecurityHeaders
from specfleet.web.queries import SpecCache
from specfleet.web.roles import Action, require
from specfleet.web.throttle import Throttle, ThrottlePolicy

HERE = Path(__file__).parent
API_PREFIX = "/api/v1"


def templates() -> Jinja2Templates:
    engine = Jinja2Templates(directory=str(HERE / "templates"))
    # Jinja2Templates autoescapes .html; say so explicitly, it is the console's XSS defence
    engine.env.autoescape = True
    engine.env.filters["markdown"] = render.markdown
    engine.env.filters["when"] = render.when
    engine.env.filters["duration"] = render.duration
    engine.env.filters["ms"] = render.milliseconds
    engine.env.filters["http_url"] = render.http_url
    return engine


def create_app(settings: Settings) -> FastAPI:
    """The console and API for the database and local forge that ``settings`` name."""
    from specfleet.web.routers import (
        account,
        api,
        evaluations,
        fleet,
        merge_requests,
        policies,
        products,
        session,
        waiting,
    )

    engine = make_engine(settings.resolved_database_url)
    ensure_schema(engine)
    app = FastAPI(
        title="specfleet",
        summary="Evergreen data products: registry, evaluations, merge requests, policies.",
        version="1",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; the console ships no third-party JS
        redoc_url=None,
    )
    app.state.web = WebContext(
        settings=settings,
        engine=engine,
        mirrors=web_mirrors(settings),
        forge=LocalForge(engine, settings.home / "forge", settings.git_timeout_seconds),
        templates=templates(),
        sessions=SessionSource(engine, secret_key(settings.home)),
        tokens=TokenSource(engine),
        specs=SpecCache(),
        throttle=Throttle(
            engine,
            ThrottlePolicy(
                free=settings.login_free_attempts,
                base_seconds=settings.login_backoff_seconds,
                ceiling_seconds=settings.login_backoff_max_seconds,
            ),
        ),
    )
    # added last = outermost: the headers go on every response, errors and 413s included
    app.add_middleware(
        BodyGuard,
        limits=BodyLimits(settings.upload_max_bytes, settings.body_max_bytes),
        judge=judge_before_body,
        too_large=body_too_large,
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for router in (
        session.router,
        fleet.router,
        products.router,
        evaluations.router,
        merge_requests.router,
        policies.router,
        account.router,
        waiting.router,
    ):
        app.include_router(router, include_in_schema=False)
    app.include_router(api.router, prefix=API_PREFIX)

    from specfleet.core.fleetstate import redis_workers_seen
    from specfleet.core.metrics import metrics_asgi_app, redis_queue_depth

    redis_url = settings.broker_url or settings.redis_url
    # a route, not a mount: a mount would redirect /metrics to /metrics/
    app.add_route(
        "/metrics",
        metrics_asgi_app(  # type: ignore[arg-type]  # an ASGI app: Starlette routes accept it
            engine,
            redis_queue_depth(redis_url) if redis_url else None,
            redis_workers_seen(redis_url) if redis_url else None,
        ),
        include_in_schema=False,
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        """200 when the database answers (compose, Kubernetes and systemd probe this)."""
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception as error:  # any failure means "not ready", never a 500 page
            return JSONResponse(
                {"status": "unavailable", "database": type(error).__name__}, status_code=503
            )
        return JSONResponse({"status": "ok"})

    @app.get("/static-pygments.css", include_in_schema=False)
    def pygments_css() -> Response:
        return PlainTextResponse(render.pygments_css(), media_type="text/css")

    @app.exception_handler(SpecfleetError)
    def specfleet_error(request: Request, error: SpecfleetError) -> Response:
        return error_response(request, error)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}"
            for item in error.errors()[:20]
        ]
        message = "; ".join(problems)
        body = {"error": "InvalidRequest", "message": message, "problems": problems}
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse(body, status_code=422)
        return page_error(request, 422, "The request is not valid", message)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse(
                {"error": "HTTPError", "message": str(error.detail)},
                status_code=error.status_code,
                headers=getattr(error, "headers", None),
            )
        return page_error(request, error.status_code, "Not here", str(error.detail))

    return app


def web_mirrors(settings: Settings) -> MirrorCache:
    """The server's mirror cache: only allowed repository URLs, a shorter time limit, and no
    lock files left over from fetches that failed before this process started."""
    allow = RepoAllowList.parse(settings.repo_allow or default_allow_text([settings.gitlab_url]))
    mirrors = MirrorCache(
        settings.mirrors_dir,
        min(settings.git_timeout_seconds, settings.repo_fetch_timeout_seconds),
        allow=allow,
    )
    mirrors.clean_stale_locks()
    return mirrors


# the role a POST needs, judged before its body is read (ownership needs the product: the
# routes check it, their bodies are small)
PERMISSION_BEFORE_BODY: dict[str, Action] = {
    f"{API_PREFIX}/products": "product.register",
    f"{API_PREFIX}/products/import": "product.register",
    f"{API_PREFIX}/policies": "policy.publish",
    "/register": "product.register",
    "/register/check": "product.register",
    "/register/import": "product.register",
    "/policies/publish": "policy.publish",
}
ANONYMOUS_POSTS = frozenset({"/login"})


def judge_before_body(request: Request) -> Response | None:
    """Who asks and whether they may, from headers alone: a refusal, or None to read on."""
    path = request.url.path
    if path in ANONYMOUS_POSTS:
        return None
    try:
        identity = api_identity(request) if path.startswith(API_PREFIX) else page_identity(request)
        action = PERMISSION_BEFORE_BODY.get(path)
        if action is not None and request.method == "POST":
            require(identity, action)
    except SpecfleetError as error:
        return error_response(request, error)
    return None


def body_too_large(request: Request, limit: int) -> Response:
    message = f"the request body is larger than {limit} bytes"
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"error": "BodyTooLarge", "message": message}, status_code=413)
    return PlainTextResponse(message, status_code=413)


def error_response(request: Request, error: SpecfleetError) -> Response:
    status = status_for(error)
    if isinstance(error, LoginRequired):
        return RedirectResponse(f"/login?next={quote(error.next_url, safe='/')}", status_code=303)
    if request.url.path.startswith(API_PREFIX):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(error), status_code=status, headers=headers)
    body = error_body(error)
    return page_error(request, status, _title(status), body["message"], body.get("problems"))


def _title(status: int) -> str:
    return {
        400: "That input cannot be used",
        401: "Sign in first",
        403: "Not allowed",
        404: "Not found",
        409: "Refused",
        413: "Too large",
        422: "Not valid",
        429: "Too many attempts",
        502: "The forge failed",
        503: "The database is not reachable",
    }.get(status, "Something went wrong")


def page_error(
    request: Request,
    status: int,
    title: str,
    message: str,
    problems: list[str] | None = None,
) -> Response:
    context: dict[str, Any] = {
        "title": title,
        "message": message,
        "problems": problems or [],
        "status": status,
        "identity": None,
        "csrf": None,
    }
    web_context: WebContext = request.app.state.web
    identity = web_context.sessions.identify(request)
    if identity is not None:
        context["identity"] = identity
        context["csrf"] = identity.csrf_token
    if request.headers.get("hx-request"):
        return web_context.templates.TemplateResponse(
            request, "_error_fragment.html", context, status_code=status
        )
    return web_context.templates.TemplateResponse(
        request, "error.html", context, status_code=status
    )
