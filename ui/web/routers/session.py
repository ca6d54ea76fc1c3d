"""Signing in and out of the console (local accounts; an OIDC login would sit beside these)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from core.db import AuditEntry, session_scope
from ui.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    CsrfError,
    check_password,
    csrf_matches,
    new_csrf_token,
)
from ui.web.deps import form_identity, web
from ui.web.routers.pages import page

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # only paths on this site: never an open redirect to another host
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _set_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.get("/login")
def login_form(request: Request, next: str = "/", error: str | None = None) -> Response:
    context = web(request)
    payload = context.sessions.read(request)
    csrf = payload.get("c") if isinstance(payload.get("c"), str) else None
    fresh = csrf is None
    if csrf is None:
        csrf = new_csrf_token()
    response = page(
        request,
        "login.html",
        None,
        status_code=401 if error else 200,
        next=_safe_next(next),
        login_csrf=csrf,
        error=error,
    )
    if fresh:
        _set_cookie(request, response, context.sessions.dump({"c": csrf}))
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    context = web(request)
    form = await request.form()
    expected = context.sessions.read(request).get("c")
    given = form.get(CSRF_FIELD)
    if not csrf_matches(
        expected if isinstance(expected, str) else None, given if isinstance(given, str) else None
    ):
        raise CsrfError("the sign-in form expired or was not sent by this site; reload it")
    name = str(form.get("name") or "")
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    identity = check_password(context.engine, name, password)
    if identity is None:
        return page(
            request,
            "login.html",
            None,
            status_code=401,
            next=target,
            login_csrf=expected,
            error="Unknown account or wrong password.",
        )
    with session_scope(context.engine) as session:
        session.add(
            AuditEntry(
                actor=identity.name,
                action="session.login",
                subject_type="account",
                subject_id=identity.name,
            )
        )
    response = RedirectResponse(target, status_code=303)
    # a new CSRF token per session: one seen before signing in is worth nothing after
    _set_cookie(
        request, response, context.sessions.dump({"a": identity.account_id, "c": new_csrf_token()})
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form_identity(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
