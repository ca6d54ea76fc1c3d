"""Approve, merge or close a merge request of the local forge."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session

from specfleet.core.db import MergeRequest, Product
from specfleet.core.errors import MergeRequestNotFound, MergeRequestRefused
from specfleet.core.forges.interface import MergeRequestState
from specfleet.core.forges.local import LocalForge

MergeAction = Literal["approve", "merge", "close"]
Authorize = Callable[[str, Sequence[str]], None]  # product id, its owners


def act_on_merge_request(
    engine: Engine,
    forge: LocalForge,
    actor: str,
    merge_request_id: int,
    action: MergeAction,
    authorize: Authorize | None = None,
) -> MergeRequestState:
    """Approve, merge or close a local merge request; ``authorize`` gets its product and owners.

    A merge request on another forge is refused with its address: it is acted on there.
    """
    with Session(engine) as session:
        row = session.get(MergeRequest, merge_request_id)
        if row is None:
            raise MergeRequestNotFound(f"no merge request {merge_request_id}")
        product = session.get(Product, row.product_id)
    if authorize is not None:
        authorize(row.product_id, list(product.owners) if product is not None else [])
    if row.forge != "local":
        raise MergeRequestRefused(
            f"merge request {merge_request_id} lives on {row.forge}; {action} it there"
            + (f" ({row.url})" if row.url else "")
        )
    if action == "approve":
        return forge.approve(merge_request_id, actor)
    if action == "merge":
        return forge.merge(merge_request_id, actor)
    return forge.close(merge_request_id, actor)


def revert_merge_request(
    engine: Engine,
    forge: LocalForge,
    actor: str,
    merge_request_id: int,
    authorize: Authorize | None = None,
) -> int:
    """Open a merge request reverting a merged one (an automerge, or any merge); its id."""
    from specfleet.worker.automerge import open_revert

    if authorize is not None:
        with Session(engine) as session:
            row = session.get(MergeRequest, merge_request_id)
            if row is None:
                raise MergeRequestNotFound(f"no merge request {merge_request_id}")
            product = session.get(Product, row.product_id)
        authorize(row.product_id, list(product.owners) if product is not None else [])
    return open_revert(engine, forge, merge_request_id, actor)
