"""The console's and the API's mutations: each checks the caller's role, then calls its use case
in :mod:`services` (written once for the CLI and the web).

Forge actions are audited by the forge itself (``mr.approve``/``mr.merge``/``mr.close``);
registration by the registry; publication by the policy store; evaluation requests by the use case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError

from specfleet.core.errors import InputError
from specfleet.core.forges.interface import MergeRequestState
from specfleet.core.registry import ImportReport, Registration, RegistrationResult
from specfleet.policies.store import PublishOutcome
from specfleet.services import evaluations, merge_requests, policies, products
from specfleet.services.evaluations import NO_LLM
from specfleet.services.merge_requests import MergeAction
from specfleet.services.onboarding import Onboarding
from specfleet.services.policies import bundled_packs
from specfleet.web.auth import Identity
from specfleet.web.deps import WebContext, actor
from specfleet.web.roles import require

__all__ = ["NO_LLM", "MergeAction", "bundled_packs"]


def act_on_merge_request(
    context: WebContext, identity: Identity, merge_request_id: int, action: MergeAction
) -> MergeRequestState:
    """Approve, merge or close a local merge request as one of its product's owners."""

    def authorize(product_id: str, owners: Sequence[str]) -> None:
        require(identity, "mr.act", owners, what=f"product {product_id}")

    return merge_requests.act_on_merge_request(
        context.engine, context.forge, actor(identity), merge_request_id, action, authorize
    )


def revert_merge_request(context: WebContext, identity: Identity, merge_request_id: int) -> int:
    """Open a merge request reverting a merged one, as one of its product's owners."""

    def authorize(product_id: str, owners: Sequence[str]) -> None:
        require(identity, "mr.act", owners, what=f"product {product_id}")

    return merge_requests.revert_merge_request(
        context.engine, context.forge, actor(identity), merge_request_id, authorize
    )


def make_registration(**fields: object) -> Registration:
    """A registration from a form or a request body; what is wrong with it -> InputError."""
    repo = str(fields.get("repo") or "")
    if repo and not (repo.startswith("/") or "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo)):
        # a relative path would be resolved against the server's working directory
        raise InputError(f"repository {repo!r}: give a URL or an absolute path on the server")
    try:
        return Registration(**fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'registration'}: {item['msg']}"
            for item in error.errors()
        )
        raise InputError(f"the registration is not valid: {problems}") from None


def register_product(
    context: WebContext, identity: Identity, registration: Registration
) -> RegistrationResult:
    require(identity, "product.register")
    return products.register_product(context.engine, context.mirrors, actor(identity), registration)


def onboard_product(
    context: WebContext, identity: Identity, registration: Registration
) -> Onboarding:
    """Register a dbt repository without a spec from its draft and open the onboarding merge
    request (``SpecMissing`` when there is nothing to draft from)."""
    from specfleet.core.forges import forge_named
    from specfleet.services.onboarding import onboard_product as onboard

    require(identity, "product.register")
    forge = (
        context.forge
        if registration.forge == "local"
        else forge_named(registration.forge, context.settings, context.engine)
    )
    return onboard(
        context.engine,
        context.mirrors,
        forge,
        actor(identity),
        registration,
        context.settings.home / "onboarding",
    )


def remove_product(context: WebContext, identity: Identity, product_id: str) -> bool:
    require(identity, "product.remove")
    return products.remove_product(context.engine, context.mirrors, actor(identity), product_id)


def import_products(
    context: WebContext, identity: Identity, filename: str, data: bytes
) -> ImportReport:
    """Register the rows of an uploaded YAML or CSV file (labelled with the upload's name)."""
    require(identity, "product.register")
    return products.import_upload(context.engine, context.mirrors, actor(identity), filename, data)


def request_evaluation(context: WebContext, identity: Identity, product_id: str) -> int:
    """Queue a manual evaluation of the product for this week (the workers pick it up)."""

    def authorize(product_id: str, owners: Sequence[str]) -> None:
        require(identity, "evaluation.request", owners, what=f"product {product_id}")

    requested = evaluations.request_evaluation(
        context.engine, actor(identity), product_id, authorize=authorize
    )
    return requested.evaluation_id


def request_amendment(
    context: WebContext, identity: Identity, product_id: str, requirement: str, why: str | None
) -> int:
    """Record an owner's amendment request and queue its evaluation; returns the request id."""

    def authorize(product_id: str, owners: Sequence[str]) -> None:
        require(identity, "amendment.request", owners, what=f"product {product_id}")

    requested = evaluations.request_amendment(
        context.engine,
        actor(identity),
        product_id,
        requirement,
        why,
        llm_configured=bool(context.settings.llm_base_url),
        authorize=authorize,
    )
    return requested.request_id


def publish_pack(
    context: WebContext, identity: Identity, pack: str, message: str
) -> PublishOutcome:
    """Publish a bundled pack (by name) or a pack folder on the server (by absolute path)."""
    from specfleet.worker.tasks import publish_dispatch

    require(identity, "policy.publish")
    if not message.strip():
        raise InputError("say why this version is published (the message)")
    folder = policies.pack_folder(pack)
    published = policies.publish_policy_pack(
        context.engine,
        folder,
        message,
        actor(identity),
        dispatch=publish_dispatch(context.settings),
    )
    return published.outcome
