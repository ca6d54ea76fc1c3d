"""Beat tasks of the owners' side: release deferred merge requests, merge opted-in ones.

Thin: the work is :func:`specfleet.worker.pipeline.deferral.release_deferred` and
:func:`specfleet.worker.automerge.run_automerge`; forges come from the pipeline's wiring.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task

from specfleet.core.forges.local import LocalForge
from specfleet.core.log import get_logger
from specfleet.scheduler.pause import fleet_paused
from specfleet.worker.tasks import SpecfleetTask, forge_lookup, paused_answer, resources

log = get_logger("specfleet.worker")


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.release_deferred")  # type: ignore[untyped-decorator]
def release_deferred(self: SpecfleetTask) -> dict[str, Any]:
    """Open deferred merge requests as the rate limits free capacity, in priority order."""
    from specfleet.worker.pipeline.deferral import release_deferred as release

    res = resources()
    pause = fleet_paused(res.engine)
    if pause is not None:
        return paused_answer(pause)
    released = release(res.engine, forge_lookup(res))
    log.info("deferred merge requests released", released=len(released))
    return {"released": [r.product_id for r in released]}


@shared_task(bind=True, base=SpecfleetTask, name="specfleet.automerge")  # type: ignore[untyped-decorator]
def automerge(self: SpecfleetTask) -> dict[str, Any]:
    """Merge the open merge requests whose owners opted in and that meet every condition."""
    from specfleet.worker.automerge import run_automerge

    res = resources()
    pause = fleet_paused(res.engine)
    if pause is not None:
        return paused_answer(pause)
    forge = LocalForge(res.engine, res.settings.forge_dir, res.settings.git_timeout_seconds)
    grace = dt.timedelta(hours=res.settings.automerge_grace_hours)
    outcomes = run_automerge(res.engine, forge, grace)
    merged = [o.merge_request_id for o in outcomes if o.merged]
    log.info("automerge pass", considered=len(outcomes), merged=len(merged))
    return {"considered": len(outcomes), "merged": merged}
