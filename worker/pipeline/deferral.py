"""Rate limits at the edge: hold a new merge request back, and release held ones later.

The decision is :mod:`core.forges.rate_limits` (pure); this module reads what it needs from
the registry and writes the outcome on the proposal row (state ``deferred``, the reason, the
priority, the merge request it would open). The publish stage calls :func:`hold_back` once,
after the branch is pushed and before the forge is asked for a new merge request: the branch
exists (like Renovate, only the merge request waits) so a release needs nothing but the
stored parameters. The scheduler's beat calls :func:`release_deferred` to open held ones in
priority order as capacity frees.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, col, func, select

from specfleet.core.db import (
    MergeRequest,
    PolicyRuleRecord,
    PolicySetFleetRules,
    PolicySetRecord,
    Product,
    Proposal,
    session_scope,
)
from specfleet.core.db.types import utcnow
from specfleet.core.forges.interface import Forge, MergeRequestParams
from specfleet.core.forges.rate_limits import (
    Admission,
    Capacity,
    Limits,
    Priority,
    Waiting,
    admit,
    priority_of,
)
from specfleet.core.settings import get_settings

ForgeFor = Callable[[Product], Forge]
# one PostgreSQL advisory lock serialises admissions across workers (SQLite serialises writes)
ADMISSION_LOCK = 0x5F1EE7


@dataclass(frozen=True)
class Released:
    proposal_id: int
    product_id: str
    url: str | None


def current_limits(engine: Engine) -> Limits:
    """Settings, tightened by the latest policy set's ``merge_requests`` section."""
    settings = get_settings()
    limits = Limits(settings.mr_hourly_limit, settings.mr_open_per_owner)
    fleet = latest_fleet_rules(engine).get("merge_requests") or {}
    return limits.tightened_by(Limits(fleet.get("hourly_limit"), fleet.get("open_per_owner")))


def latest_fleet_rules(engine: Engine) -> dict[str, Any]:
    """The fleet section of the newest policy set (empty when it has none)."""
    with Session(engine) as session:
        version = session.exec(select(func.max(PolicySetRecord.version))).one()
        if version is None:
            return {}
        row = session.get(PolicySetFleetRules, version)
    return dict(row.body) if row is not None else {}


def hold_back(
    engine: Engine,
    product: Product,
    proposal_key: str,
    params: MergeRequestParams,
    change_reasons: Sequence[str] = (),
    claimed_rules: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> str | None:
    """Admit the proposal to open a new merge request now (None), or defer it: the reason.

    Other deferred proposals of the product on the same branch are superseded either way: the
    newest proposal is the one that goes out.
    """
    limits = current_limits(engine)
    now = now or utcnow()
    with session_scope(engine) as session:
        _lock(session)
        proposal = session.exec(
            select(Proposal).where(Proposal.product_id == product.id, Proposal.key == proposal_key)
        ).first()
        if proposal is None:  # not recorded (cannot happen after _ensure_proposal): no gate
            return None
        _supersede_deferred(session, product.id, params.source_branch, keep=proposal.id)
        if limits.unlimited:
            proposal.released_at = now
            session.add(proposal)
            return None
        since = _as_utc(proposal.created_at)
        priority = priority_of(change_reasons, claimed_rules, _rule_severities(session), since)
        me = Waiting(proposal.id or 0, product.id, tuple(product.owners), priority)
        others = [w for w in _deferred(session) if w.proposal_id != me.proposal_id]
        admission = admit([*others, me], _capacity(session, now), limits)
        reason = admission.reason_for(me.proposal_id)
        proposal.priority = _priority_json(priority)
        if reason is None:
            proposal.released_at = now
            proposal.deferred_reason = None
            proposal.state = "proposed"
        else:
            proposal.state = "deferred"
            proposal.deferred_reason = reason[:500]
            proposal.changes = {**(proposal.changes or {}), "merge_request": _params_json(params)}
        session.add(proposal)
        return reason


def release_deferred(
    engine: Engine, forge_for: ForgeFor, now: dt.datetime | None = None
) -> list[Released]:
    """Open the deferred proposals the limits let through now, in priority order."""
    limits = current_limits(engine)
    now = now or utcnow()
    with session_scope(engine) as session:
        _lock(session)
        waiting = _deferred(session)
        if not waiting:
            return []
        admission: Admission = admit(waiting, _capacity(session, now), limits)
        chosen: list[tuple[int, Product, dict[str, Any]]] = []
        for entry in admission.admitted:
            proposal = session.get(Proposal, entry.proposal_id)
            product = session.get(Product, entry.product_id)
            if proposal is None or product is None:
                continue
            proposal.released_at = now
            proposal.state = "proposed"
            proposal.deferred_reason = None
            session.add(proposal)
            chosen.append((entry.proposal_id, product, dict(proposal.changes or {})))
        for entry, reason in admission.deferred:
            proposal = session.get(Proposal, entry.proposal_id)
            if proposal is not None and proposal.deferred_reason != reason:
                proposal.deferred_reason = reason[:500]
                session.add(proposal)
        session.flush()  # the releases are written before any forge call
        for _id, product, _changes in chosen:
            session.expunge(product)  # read after the session: never changed here
    released: list[Released] = []
    for proposal_id, product, changes in chosen:
        params = MergeRequestParams(**_params_from_json(changes["merge_request"]))
        state = forge_for(product).ensure_merge_request(params)
        _record_opened(engine, product, params, state.ref, state.url, state.head_commit)
        released.append(Released(proposal_id, product.id, state.url))
    return released


def deferred_proposals(engine: Engine) -> list[tuple[Proposal, Waiting]]:
    """Every deferred proposal with its place in the release order (for the fleet views)."""
    from specfleet.core.forges.rate_limits import release_order

    with Session(engine) as session:
        waiting = release_order(_deferred(session))
        rows = {
            row.id: row
            for row in session.exec(select(Proposal).where(Proposal.state == "deferred")).all()
        }
    return [(rows[w.proposal_id], w) for w in waiting if w.proposal_id in rows]


# -- reading the registry -------------------------------------------------------------------


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=ADMISSION_LOCK))  # type: ignore[call-overload]


def _capacity(session: Session, now: dt.datetime) -> Capacity:
    hour_ago = now - dt.timedelta(hours=1)
    opened = session.exec(
        select(func.count()).select_from(Proposal).where(col(Proposal.released_at) > hour_ago)
    ).one()
    open_products = Counter(
        session.exec(select(MergeRequest.product_id).where(MergeRequest.state == "open")).all()
    )
    # released but not yet visible as a merge request row (another worker is opening it)
    in_flight = session.exec(
        select(Proposal.product_id, Proposal.key).where(
            col(Proposal.released_at) > hour_ago, Proposal.state == "proposed"
        )
    ).all()
    carried = set(
        session.exec(
            select(MergeRequest.proposal_key).where(col(MergeRequest.proposal_key).is_not(None))
        ).all()
    )
    for product_id, key in in_flight:
        if key not in carried:
            open_products[product_id] += 1
    owners = _owners(session, set(open_products))
    by_owner: Counter[str] = Counter()
    for product_id, count in open_products.items():
        for owner in {o.lower() for o in owners.get(product_id, ())}:
            by_owner[owner] += count
    return Capacity(int(opened), dict(by_owner))


def _deferred(session: Session) -> list[Waiting]:
    rows = session.exec(select(Proposal).where(Proposal.state == "deferred")).all()
    owners = _owners(session, {row.product_id for row in rows})
    return [
        Waiting(
            row.id or 0,
            row.product_id,
            tuple(owners.get(row.product_id, ())),
            _priority_from_json(row.priority, _as_utc(row.created_at)),
        )
        for row in rows
    ]


def _owners(session: Session, product_ids: set[str]) -> dict[str, list[str]]:
    if not product_ids:
        return {}
    rows = session.exec(
        select(Product.id, Product.owners).where(col(Product.id).in_(sorted(product_ids)))
    ).all()
    return {pid: list(owners or []) for pid, owners in rows}


def _rule_severities(session: Session) -> dict[str, str]:
    version = session.exec(select(func.max(PolicySetRecord.version))).one()
    if version is None:
        return {}
    rows = session.exec(
        select(PolicyRuleRecord.rule_id, PolicyRuleRecord.severity).where(
            PolicyRuleRecord.policy_set_version == version
        )
    ).all()
    return dict(rows)


def _supersede_deferred(session: Session, product_id: str, branch: str, keep: int | None) -> None:
    for row in session.exec(
        select(Proposal).where(Proposal.product_id == product_id, Proposal.state == "deferred")
    ).all():
        stored = (row.changes or {}).get("merge_request") or {}
        if row.id != keep and stored.get("source_branch", branch) == branch:
            row.state = "superseded"
            session.add(row)


def _record_opened(
    engine: Engine,
    product: Product,
    params: MergeRequestParams,
    ref: str,
    url: str,
    head: str | None,
) -> None:
    """Mirror a released merge request in the registry (the local forge's row already is it)."""
    with session_scope(engine) as session:
        proposal = session.exec(
            select(Proposal).where(
                Proposal.product_id == product.id, Proposal.key == params.proposal_key
            )
        ).first()
        row = session.exec(
            select(MergeRequest).where(
                MergeRequest.product_id == product.id, MergeRequest.forge_ref == ref
            )
        ).first()
        if row is None:
            row = MergeRequest(
                product_id=product.id, forge=product.forge, forge_ref=ref, title=params.title
            )
        row.url = url
        row.description = params.description
        row.head_commit = head
        row.proposal_key = params.proposal_key
        row.branch = params.source_branch
        row.target_branch = params.target_branch
        row.labels = list(params.labels)
        if proposal is not None:
            row.proposal_id = proposal.id
        row.updated_at = utcnow()
        session.add(row)


# -- JSON forms ----------------------------------------------------------------------------


def _params_json(params: MergeRequestParams) -> dict[str, Any]:
    data = asdict(params)
    for name in ("labels", "assignees", "reviewers"):
        data[name] = list(data[name])
    return data


def _params_from_json(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    for name in ("labels", "assignees", "reviewers"):
        fields[name] = tuple(fields.get(name) or ())
    return fields


def _priority_json(priority: Priority) -> dict[str, Any]:
    return {"security": priority.security, "severity": priority.severity, "tier": priority.tier}


def _priority_from_json(data: dict[str, Any] | None, since: dt.datetime) -> Priority:
    data = data or {}
    return Priority(bool(data.get("security")), data.get("severity"), since)


def _as_utc(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
