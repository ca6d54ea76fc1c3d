"""Two ASGI middlewares every request passes: security headers on every response, and the
body guard that judges a request (who asks, may they, how big) before reading its body.

Both are plain ASGI (not Starlette's BaseHTTPMiddleware) so that a streamed body is never
buffered: the guard counts bytes as the application reads them and stops at the cap.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# HTMX and the style sheets come from this app; nothing inline, nothing from elsewhere
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def security_headers(scheme: str) -> list[tuple[bytes, bytes]]:
    """The headers every response carries; HSTS only when the request came over HTTPS."""
    headers = list(SECURITY_HEADERS)
    if scheme == "https":
        headers.append(HSTS)
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("scheme", "http"))
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in names
                ]
                message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class BodyLimits:
    upload_bytes: int
    other_bytes: int
    upload_paths: tuple[str, ...] = ("/api/v1/products/import", "/register/import")

    def for_path(self, path: str) -> int:
        return self.upload_bytes if path in self.upload_paths else self.other_bytes


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length a client declared (None when absent or not a number)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if re.fullmatch(r"\d{1,18}", text) else None
    return None


class BodyTooLarge(HTTPException):
    """The body grew past its cap while the application was reading it: 413.

    An HTTPException so that FastAPI's body parsing passes it on as is (it turns any other
    error while reading a body into a 400) and the app's handler renders it.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Judges a request before its body is read: a response refusing it, or None to go ahead.
Judge = Callable[[Request], Response | None]
TooLarge = Callable[[Request, int], Response]


class BodyGuard:
    """Authorisation and a size cap before the body: a viewer's 100 MB upload costs nothing."""

    def __init__(self, app: ASGIApp, limits: BodyLimits, judge: Judge, too_large: TooLarge):
        self.app = app
        self.limits = limits
        self.judge = judge
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.judge(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = declared_length(scope.get("headers", []))
        if declared is not None and declared > limit:
            await self.too_large(request, limit)(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large(request, limit)(scope, receive, send)
