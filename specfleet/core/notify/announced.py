"""Recording that the digest told owners about automerges, so no later digest repeats them.

An automerge is told to each owner of its product once: a ``notification_sent`` row
(:data:`~core.notify.gather.ANNOUNCED_KIND`, owner, record id) written only after that owner's
digest was delivered on at least one channel. When every owner who gets digests was told, the
record's ``announced_at`` is set and the digest stops reading it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from specfleet.core.db import (
    AutomergeRecord,
    NotificationOptOut,
    NotificationSent,
    Product,
    session_scope,
)
from specfleet.core.db.types import utcnow
from specfleet.core.notify.gather import ANNOUNCED_CHANNEL, ANNOUNCED_KIND, told_owners


def announce_to(
    engine: Engine,
    owner: str,
    record_ids: Sequence[int],
    week: str,
    when: dt.datetime | None = None,
) -> None:
    """Record that ``owner``'s digest of ``week`` told them about these automerges."""
    for record_id in record_ids:
        try:
            with session_scope(engine) as session:
                session.add(
                    NotificationSent(
                        kind=ANNOUNCED_KIND,
                        owner=owner,
                        key=str(record_id),
                        channel=ANNOUNCED_CHANNEL,
                        state="sent",
                        detail={"week": week},
                    )
                )
        except IntegrityError:
            pass  # another run told them already
    _close_announced(engine, record_ids, when or utcnow())


def _close_announced(engine: Engine, record_ids: Sequence[int], when: dt.datetime) -> None:
    """Set ``announced_at`` on the records every owner who gets digests has been told about."""
    with session_scope(engine) as session:
        silent = {row.owner.casefold() for row in session.exec(select(NotificationOptOut)).all()}
        told = told_owners(session, record_ids)
        for record_id in record_ids:
            record = session.get(AutomergeRecord, record_id)
            if record is None or record.announced_at is not None:
                continue
            product = session.get(Product, record.product_id)
            owners = {o.casefold() for o in (product.owners if product else [])} - silent
            if owners <= told.get(record_id, frozenset()):
                record.announced_at = when
                session.add(record)


def mark_announced(
    engine: Engine, record_ids: Sequence[int], when: dt.datetime | None = None
) -> None:
    """Record that these automerges were announced to everyone (no digest repeats them)."""
    with session_scope(engine) as session:
        for record_id in record_ids:
            row = session.get(AutomergeRecord, record_id)
            if row is not None and row.announced_at is None:
                row.announced_at = when or utcnow()
                session.add(row)


__all__ = ["announce_to", "mark_announced"]
