"""Mutations shared by the console and the API, each checked against roles and audited.

Forge actions are audited by the forge itself (``mr.approve``/``mr.merge``/``mr.close``);
registration by the registry; publication by the policy store; the rest here.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from sqlmodel import Session

from core.db import AuditEntry, MergeRequest, Product, session_scope
from core.errors import (
    ImportFileError,
    InputError,
    MergeRequestNotFound,
    MergeRequestRefused,
    ProductNotFound,
)
from core.forges.interface import MergeRequestState
from core.registry import ImportReport, Registration, RegistrationResult, Registry, read_import_file
from core.windows import iso_week
from policies.checks.semgrep import validate_semgrep_rules
from policies.packs import load_pack
from policies.store import PublishOutcome, publish
from ui.web.auth import Identity
from ui.web.deps import WebContext, actor
from ui.web.roles import require

MergeAction = Literal["approve", "merge", "close"]
MAX_IMPORT_BYTES = 20 * 1024 * 1024
PACKS_DIR = Path(__file__).resolve().parent.parent.parent / "policies" / "pack"


def act_on_merge_request(
    context: WebContext, identity: Identity, merge_request_id: int, action: MergeAction
) -> MergeRequestState:
    """Approve, merge or close a local merge request as one of its product's owners."""
    with Session(context.engine) as session:
        row = session.get(MergeRequest, merge_request_id)
        if row is None:
            raise MergeRequestNotFound(f"no merge request {merge_request_id}")
        product = session.get(Product, row.product_id)
    owners = list(product.owners) if product is not None else []
    require(identity, "mr.act", owners, what=f"product {row.product_id}")
    if row.forge != "local":
        raise MergeRequestRefused(
            f"merge request {merge_request_id} lives on {row.forge}; {action} it there"
            + (f" ({row.url})" if row.url else "")
        )
    who = actor(identity)
    if action == "approve":
        return context.forge.approve(merge_request_id, who)
    if action == "merge":
        return context.forge.merge(merge_request_id, who)
    return context.forge.close(merge_request_id, who)


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
    return Registry(context.engine, context.mirrors, actor(identity)).add(registration)


def remove_product(context: WebContext, identity: Identity, product_id: str) -> bool:
    require(identity, "product.remove")
    return Registry(context.engine, context.mirrors, actor(identity)).remove(product_id)


def import_products(
    context: WebContext, identity: Identity, filename: str, data: bytes
) -> ImportReport:
    """Register the rows of an uploaded YAML or CSV file (labelled with the upload's name)."""
    require(identity, "product.register")
    if len(data) > MAX_IMPORT_BYTES:
        raise InputError(f"{filename}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
    # the uploader's file name labels every row's message; only its last part, and safe
    name = Path(filename.replace("\\", "/")).name or "upload"
    name = "".join(char if char.isalnum() or char in "._-" else "_" for char in name)[:100]
    with tempfile.TemporaryDirectory(prefix="specfleet-import-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            rows = read_import_file(path)
        except ImportFileError as error:
            # the server's temporary folder means nothing to the uploader
            raise ImportFileError(str(error).replace(folder + "/", "")) from None
        report = Registry(context.engine, context.mirrors, actor(identity)).import_rows(rows)
    report.failed = [
        replace(
            failure,
            label=failure.label.replace(folder + "/", ""),
            reason=failure.reason.replace(folder + "/", ""),
        )
        for failure in report.failed
    ]
    return report


def request_evaluation(context: WebContext, identity: Identity, product_id: str) -> int:
    """Queue a manual evaluation of the product for this week (the workers pick it up)."""
    with Session(context.engine) as session:
        product = session.get(Product, product_id)
    if product is None or not product.active:
        raise ProductNotFound(f"no product {product_id!r} is registered")
    require(identity, "evaluation.request", product.owners, what=f"product {product_id}")
    window = iso_week(dt.date.today())
    evaluation_id = _queue(context, product_id, window)
    with session_scope(context.engine) as session:
        session.add(
            AuditEntry(
                actor=actor(identity),
                action="evaluation.requested",
                subject_type="product",
                subject_id=product_id,
                detail={"evaluation": evaluation_id, "window": window},
            )
        )
    return evaluation_id


NO_LLM = (
    "amendments are drafted by an LLM and no endpoint is configured (SPECFLEET_LLM_BASE_URL); "
    "nothing was recorded"
)


def request_amendment(
    context: WebContext, identity: Identity, product_id: str, requirement: str, why: str | None
) -> int:
    """Record an owner's amendment request and queue its evaluation; returns the request id.

    Like a manual evaluation it waits in the table; the scheduler sends queued evaluations
    to the workers. Refused, with nothing recorded, when no LLM endpoint is configured.
    """
    from agent.amend import AmendmentAsk
    from worker.pipeline.amend import request_amendment as record

    with Session(context.engine) as session:
        product = session.get(Product, product_id)
    if product is None or not product.active:
        raise ProductNotFound(f"no product {product_id!r} is registered")
    require(identity, "amendment.request", product.owners, what=f"product {product_id}")
    ask = AmendmentAsk(requirement, why or None)
    if not context.settings.llm_base_url:
        raise InputError(NO_LLM)
    queued = record(context.engine, product_id, ask, actor(identity), iso_week(dt.date.today()))
    return queued.request_id


def _queue(context: WebContext, product_id: str, window: str) -> int:
    try:
        from worker.pipeline import queue_evaluation
    except ImportError:  # a console installed without the pipeline still records the request
        from core.db import ledger

        return ledger.queue_once(context.engine, product_id, window, "manual")
    return queue_evaluation(context.engine, product_id, window, "manual")


def bundled_packs() -> list[str]:
    """The policy packs shipped with specfleet (policies/pack/<name>)."""
    if not PACKS_DIR.is_dir():
        return []
    return sorted(path.name for path in PACKS_DIR.iterdir() if (path / "rules").is_dir())


def publish_pack(
    context: WebContext, identity: Identity, pack: str, message: str
) -> PublishOutcome:
    """Publish a bundled pack (by name) or a pack folder on the server (by absolute path)."""
    require(identity, "policy.publish")
    if not message.strip():
        raise InputError("say why this version is published (the message)")
    if pack in bundled_packs():
        folder = PACKS_DIR / pack
    else:
        folder = Path(pack)
        if not folder.is_absolute() or not (folder / "rules").is_dir():
            raise InputError(
                f"{pack!r} is neither a bundled pack ({', '.join(bundled_packs())}) nor an "
                "absolute path to a pack folder with a rules/ directory"
            )
    loaded = load_pack(folder, validate_semgrep=validate_semgrep_rules)
    outcome = publish(context.engine, loaded, message.strip(), actor(identity))
    if outcome.created and outcome.affected:
        from scheduler.fanout import queue_policy_evaluations

        affected = sorted({pid for ids in outcome.affected.values() for pid in ids})
        from worker.tasks import paused_check, publish_dispatch

        # paused: recorded as queued, sent by the sweep after resume
        queue_policy_evaluations(
            context.engine,
            affected,
            outcome.policy_set.version,
            dispatch=publish_dispatch(context.settings),
            pause_check=paused_check(context.engine),
        )
    return outcome
