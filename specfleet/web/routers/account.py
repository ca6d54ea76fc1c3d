"""The credentials page: an account's API tokens and browser sessions (platform: everyone's),
with revoke and end buttons. Tokens are created on the command line, where they can be copied
once and never shown again."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from specfleet.core.errors import InputError
from specfleet.web.auth import Identity, PermissionDenied
from specfleet.web.credentials import (
    AccountRow,
    end_session,
    list_accounts,
    list_sessions,
    list_tokens,
    revoke_tokens,
)
from specfleet.web.deps import SignedIn, actor, form_identity, web
from specfleet.web.routers.pages import page

router = APIRouter()


def may_manage(identity: Identity, account: str) -> bool:
    """Everyone manages their own credentials; the platform role manages everyone's."""
    return identity.role == "platform" or identity.name == account


@router.get("/account")
def account_page(request: Request, identity: SignedIn) -> Response:
    engine = web(request).engine
    if identity.role == "platform":
        accounts = list_accounts(engine)
    else:
        accounts = [
            AccountRow(
                name=identity.name,
                role=identity.role,
                disabled=False,
                tokens=tuple(list_tokens(engine, identity.name)),
                sessions=tuple(list_sessions(engine, identity.name)),
            )
        ]
    return page(
        request,
        "account.html",
        identity,
        accounts=accounts,
        everyone=identity.role == "platform",
        current_session=identity.session_id,
    )


async def _target(request: Request) -> tuple[Identity, str, str]:
    identity, form = await form_identity(request)
    account = str(form.get("account") or "")
    if not may_manage(identity, account):
        raise PermissionDenied(f"{identity.name} may only manage their own credentials")
    return identity, account, str(form.get("token") or form.get("session") or "")


@router.post("/account/tokens/revoke")
async def revoke(request: Request) -> Response:
    identity, account, token = await _target(request)
    if not token:
        raise InputError("say which token to revoke")
    revoke_tokens(web(request).engine, account, token, actor(identity))
    return RedirectResponse("/account?done=revoked", status_code=303)


@router.post("/account/sessions/end")
async def end(request: Request) -> Response:
    identity, account, session = await _target(request)
    if not session.isdigit():
        raise InputError("say which session to end")
    end_session(web(request).engine, account, int(session), actor(identity))
    return RedirectResponse("/account?done=ended", status_code=303)
