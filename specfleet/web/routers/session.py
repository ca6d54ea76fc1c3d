"""Signing in and out of the console (local accounts; an OIDC login would sit beside these)."""

from __future__ import annotations

import math
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature

from specfleet.core.db import AuditEntry, session_scope
from specfleet.web.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    CsrfError,
    check_password,
    csrf_matches,
    new_csrf_token,
)
from specfleet.web.deps import form_identity, web
from specfleet.web.routers.pages import page
from specfleet.web.throttle import account_key, address_key, device_key, retry_after_header

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


LOGIN_NOTICES = {
    "signed-out": "You are signed out.",
    "expired": "Your session ended; sign in again.",
}
DEVICE_COOKIE = "specfleet_device"
DEVICE_MAX_AGE = 180 * 24 * 3600


@router.get("/login")
def login_form(request: Request, next: str = "/", notice: str | None = None) -> Response:
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
        next=_safe_next(next),
        login_csrf=csrf,
        # only messages this page chose: a link cannot make the login page say anything else
        error=None,
        notice=LOGIN_NOTICES.get(notice or ""),
    )
    if fresh:
        _set_cookie(request, response, context.sessions.dump({"c": csrf}))
    return response


def _device_of(request: Request, account_name: str) -> str | None:
    """The device id from this browser's earlier successful sign-in to ``account_name``."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        payload = web(request).sessions.serializer.loads(
            raw, max_age=DEVICE_MAX_AGE, salt="specfleet-device"
        )
    except BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("n") != account_name.strip().lower():
        return None
    device = payload.get("d")
    return device if isinstance(device, str) else None


def _throttle_keys(request: Request, name: str) -> tuple[list[str], list[str]]:
    """(keys checked and charged on failure, keys forgotten on success)."""
    device = _device_of(request, name)
    own = device_key(device) if device else account_key(name)
    address = address_key(request.client.host if request.client else "unknown")
    return [own, address], [own]


def _audit(request: Request, actor: str, action: str, name: str, **detail: object) -> None:
    client = request.client.host if request.client else "unknown"
    with session_scope(web(request).engine) as session:
        session.add(
            AuditEntry(
                actor=actor,
                action=action,
                subject_type="account",
                subject_id=name[:200],
                detail={"client": client, **detail},
            )
        )


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
    name = str(form.get("name") or "")[:200]
    password = str(form.get("password") or "")[:1000]
    target = _safe_next(str(form.get("next") or "/"))
    charged, proven = _throttle_keys(request, name)
    throttle = context.throttle
    wait = throttle.wait(charged)
    if wait > 0:
        _audit(request, "anonymous", "session.throttled", name, retry_after=math.ceil(wait))
        response = page(
            request,
            "login.html",
            None,
            status_code=429,
            next=target,
            login_csrf=expected,
            error="Too many failed sign-ins: wait a little before trying again.",
        )
        response.headers["Retry-After"] = retry_after_header(wait)
        return response
    identity = check_password(context.engine, name, password)
    if identity is None:
        throttle.failed(charged)
        _audit(request, "anonymous", "session.login_failed", name)
        return page(
            request,
            "login.html",
            None,
            status_code=401,
            next=target,
            login_csrf=expected,
            error="Unknown account or wrong password.",
        )
    throttle.succeeded(proven)
    _audit(request, identity.name, "session.login", identity.name)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, context.sessions.start(identity, request))
    device = _device_of(request, name) or secrets.token_urlsafe(16)
    response.set_cookie(
        DEVICE_COOKIE,
        context.sessions.serializer.dumps(
            {"n": name.strip().lower(), "d": device}, salt="specfleet-device"
        ),
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/login",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    identity, _ = await form_identity(request)
    # ended on the server: a copy of the cookie is worth nothing from now on
    web(request).sessions.end(request)
    _audit(request, identity.name, "session.logout", identity.name)
    response = RedirectResponse("/login?notice=signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
