"""Policies: published versions, the diff between two, the compliance matrix (products x
rules), one rule's rollout chart over the weeks, and publishing a pack (architects)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from specfleet.core.db import Product
from specfleet.core.errors import InputError
from specfleet.policies.diff import diff_rules
from specfleet.policies.store import PolicySet, first_published, list_policy_sets, load_policy_set
from specfleet.web.actions import bundled_packs, publish_pack
from specfleet.web.charts import rollout_svg
from specfleet.web.deps import (
    NotFound,
    SignedIn,
    VersionQuery,
    WebContext,
    form_identity,
    web,
)
from specfleet.web.queries import latest_statuses, rollout_weeks
from specfleet.web.roles import allowed
from specfleet.web.routers.pages import page

router = APIRouter()
MATRIX_PAGE = 100
ROLLOUT_WEEKS = 26


def policy_set(context: WebContext, version: int | None) -> PolicySet | None:
    """The version asked for (404 when it does not exist); None when nothing is published."""
    try:
        return load_policy_set(context.engine, version)
    except InputError as error:
        if version is None:
            return None
        raise NotFound(str(error)) from None


@router.get("/policies")
def policies_page(
    request: Request,
    identity: SignedIn,
    old: VersionQuery = None,
    new: VersionQuery = None,
) -> Response:
    context = web(request)
    versions = list_policy_sets(context.engine)
    latest = policy_set(context, None)
    diff = None
    if (old is None or new is None) and len(versions) >= 2:
        # by default: what the latest publication changed
        old, new = versions[1][0].version, versions[0][0].version
    if old is not None and new is not None:
        before, after = policy_set(context, old), policy_set(context, new)
        assert before is not None and after is not None
        diff = diff_rules(before.rules, after.rules)
    return page(
        request,
        "policies.html",
        identity,
        versions=versions,
        latest=latest,
        diff=diff,
        old=old,
        new=new,
        packs=bundled_packs(),
        can_publish=allowed(identity, "policy.publish"),
    )


@router.post("/policies/publish")
async def publish(request: Request) -> Response:
    identity, form = await form_identity(request)
    pack = str(form.get("pack") or "").strip()
    message = str(form.get("message") or "")
    outcome = publish_pack(web(request), identity, pack, message)
    done = (
        f"published v{outcome.policy_set.version}"
        if outcome.created
        else f"unchanged: already v{outcome.policy_set.version}"
    )
    return RedirectResponse(f"/policies/compliance?done={done}", status_code=303)


@router.get("/policies/compliance")
def compliance_page(
    request: Request,
    identity: SignedIn,
    version: VersionQuery = None,
    page_number: int = 1,
) -> Response:
    context = web(request)
    chosen = policy_set(context, version)
    totals: dict[str, dict[str, int]] = {}
    rule_ids = [rule.id for rule in chosen.rules] if chosen else []
    with Session(context.engine) as session:
        products = list(
            session.exec(select(Product.id).where(col(Product.active)).order_by(col(Product.id)))
        )
        statuses = latest_statuses(session, rule_ids)
    for rule in rule_ids:
        counted = [statuses.get((product, rule), "unknown") for product in products]
        totals[rule] = {
            status: counted.count(status)
            for status in ("pass", "fail", "unknown", "not-applicable")
        }
    pages = max(1, -(-len(products) // MATRIX_PAGE))
    number = min(max(page_number, 1), pages)
    shown = products[(number - 1) * MATRIX_PAGE : number * MATRIX_PAGE]
    cells = {(p, r): statuses.get((p, r), "unknown") for p in shown for r in rule_ids}
    return page(
        request,
        "compliance.html",
        identity,
        policy_set=chosen,
        rule_ids=rule_ids,
        products=shown,
        total_products=len(products),
        cells=cells,
        totals=totals,
        page_number=number,
        pages=pages,
    )


@router.get("/policies/rules/{rule_id}")
def rule_page(
    request: Request,
    identity: SignedIn,
    rule_id: str,
    version: VersionQuery = None,
) -> Response:
    context = web(request)
    chosen = policy_set(context, version)
    rule = chosen.rule(rule_id) if chosen else None
    if rule is None:
        raise NotFound(
            f"policy set v{chosen.version} has no rule {rule_id!r}"
            if chosen
            else "no policy set is published yet"
        )
    today = dt.date.today()
    since = max(
        first_published(context.engine, rule_id) or today,
        today - dt.timedelta(weeks=ROLLOUT_WEEKS),
    )
    weeks = rollout_weeks(context.engine, rule_id, since, today)
    return page(
        request,
        "rule.html",
        identity,
        policy_set=chosen,
        rule=rule,
        weeks=weeks,
        chart=rollout_svg(weeks, f"Rollout of {rule_id} since {since}"),
    )
