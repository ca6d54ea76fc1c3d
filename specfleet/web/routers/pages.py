"""Rendering a console page: the template plus who is signed in and their CSRF token."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from specfleet.web.auth import Identity
from specfleet.web.deps import web


def page(
    request: Request,
    template: str,
    identity: Identity | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    values = {
        "identity": identity,
        "csrf": identity.csrf_token if identity else None,
        "flash": request.query_params.get("done"),
        **context,
    }
    return web(request).templates.TemplateResponse(
        request, template, values, status_code=status_code
    )
