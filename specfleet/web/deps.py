"""What every route shares: the wired backends, who is asking, CSRF checks, errors -> status.

The wiring (:class:`WebContext`) is built once by :func:`web.app.create_app` from settings;
routes reach it through ``request.app.state.web``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.datastructures import FormData

from specfleet.core.errors import (
    DatabaseError,
    DocumentInvalid,
    FleetPaused,
    ForgeError,
    ImportFileError,
    InputError,
    MergeRequestNotFound,
    MergeRequestRefused,
    ProductConflict,
    ProductNotFound,
    RegistryError,
    RepositoryError,
    SpecfleetError,
    SpecMissing,
)
from specfleet.core.forges.local import LocalForge
from specfleet.core.git import MirrorCache
from specfleet.core.settings import Settings
from specfleet.web.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    AuthError,
    CsrfError,
    Identity,
    PermissionDenied,
    SessionSource,
    TokenSource,
    csrf_matches,
)
from specfleet.web.queries import SpecCache
from specfleet.web.throttle import Throttle


@dataclass
class WebContext:
    """The backends the console and the API use, chosen from settings."""

    settings: Settings
    engine: Engine
    mirrors: MirrorCache
    forge: LocalForge
    templates: Jinja2Templates
    sessions: SessionSource
    tokens: TokenSource
    specs: SpecCache
    throttle: Throttle


class LoginRequired(SpecfleetError):
    """A page was asked for without a session: the browser is sent to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("sign in first")
        self.next_url = next_url


class NotFound(SpecfleetError):
    """A page or API object that does not exist (an evaluation id, a policy version)."""


def web(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


def page_identity(request: Request) -> Identity:
    """The signed-in person, or a redirect to the login page."""
    identity = web(request).sessions.identify(request)
    if identity is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return identity


def api_identity(request: Request) -> Identity:
    """The bearer token's identity, or 401."""
    identity = web(request).tokens.identify(request)
    if identity is None:
        if request.headers.get("authorization"):
            raise AuthError(
                "the API token is not valid (unknown, revoked, expired or malformed, "
                "or its account is disabled)"
            )
        raise AuthError(
            "this API needs 'Authorization: Bearer <token>' (create one with specfleet user token)"
        )
    if request.method not in ("GET", "HEAD", "OPTIONS") and not identity.can_write:
        raise PermissionDenied(
            "this token is read-only; create one with write scope to change things"
        )
    return identity


async def form_identity(request: Request) -> tuple[Identity, FormData]:
    """The signed-in person and the POSTed form, after checking the session's CSRF token."""
    identity = page_identity(request)
    form = await request.form()
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_matches(identity.csrf_token, given if isinstance(given, str) else None):
        raise CsrfError(
            "the form's security token is missing or does not match your session; "
            "reload the page and try again"
        )
    return identity, form


def actor(identity: Identity) -> str:
    """The name written to the audit log and to approvals."""
    return identity.name


STATUS_BY_ERROR: tuple[tuple[type[SpecfleetError], int], ...] = (
    (LoginRequired, 303),
    (AuthError, 401),
    (PermissionDenied, 403),
    (ProductNotFound, 404),
    (MergeRequestNotFound, 404),
    (NotFound, 404),
    (ProductConflict, 409),
    (MergeRequestRefused, 409),
    (FleetPaused, 409),
    (DocumentInvalid, 422),
    (SpecMissing, 422),
    (ImportFileError, 400),
    (InputError, 400),
    (RegistryError, 409),
    (RepositoryError, 422),
    (DatabaseError, 503),
    (ForgeError, 502),
)


def status_for(error: SpecfleetError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_body(error: SpecfleetError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    if isinstance(error, DocumentInvalid):
        body["problems"] = [problem.render() for problem in error.problems[:50]]
    return body


MAX_ID = 2_147_483_647
# ids are database integers: bounded so that no request can overflow a column
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
VersionQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
SignedIn = Annotated[Identity, Depends(page_identity)]
