"""Automerge: an opted-in product's verified patch-level security fix is merged by specfleet
after the grace period (audited, recorded for the digest, revertible with one merge request);
a failing one, an unopted one and one beyond the policy set's cap are not. Real git
repositories and the local forge, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import git
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import (
    AuditEntry,
    AutomergeRecord,
    MergeRequest,
    PolicySetFleetRules,
    PolicySetRecord,
    Product,
    Proposal,
    session_scope,
)
from specfleet.core.db.types import utcnow
from specfleet.core.forges.interface import EVERGREEN_BRANCH, BranchPush, MergeRequestParams
from specfleet.core.forges.local import LocalForge
from specfleet.worker.automerge import (
    decide_automerge,
    effective_level,
    mark_announced,
    open_revert,
    run_automerge,
    unannounced_automerges,
)
from specfleet.worker.review import review_facts
from tests.conftest import EXAMPLES, commit_files

GRACE = dt.timedelta(hours=24)
FIX = {
    "package": "pyarrow",
    "file": "requirements.txt",
    "from": "14.0.0",
    "to": "14.0.1",
    "why": "PYSEC-2023-238: arbitrary code execution (critical severity)",
}


def _description(passed: bool) -> str:
    verdict = (
        "**Verification: passed.** All good."
        if passed
        else ("**Verification: failed.** the candidate's tests failed.")
    )
    return f"""## Verification

{verdict}

### Output contracts

Every output (orders) matches the spec and the baseline.

### Data on the fixtures

| output | baseline rows | candidate rows | only in baseline | only in candidate | changed rows | changed columns |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
| orders | 5 | 5 | 0 | 0 | 0 | - |

## LLM usage

none — deterministic remediators
"""


def _product(engine, forge, make_repo, product_id, *, registry=None, spec_opt=None, passed=True):
    """A product whose repository pins pyarrow 14.0.0 and an open MR upgrading it to 14.0.1."""
    files = {"requirements.txt": "pyarrow==14.0.0\n"}
    spec_path = "dataproduct.yaml"
    if spec_opt is not None:
        spec = (EXAMPLES / "orders" / "dataproduct.yaml").read_text()
        files[spec_path] = (
            spec.replace("id: orders", f"id: {product_id}", 1) + f"automerge: {spec_opt}\n"
        )
    source = make_repo(files, name=product_id)
    with session_scope(engine) as session:
        session.add(
            Product(
                id=product_id,
                name=product_id,
                repo_url=str(source),
                owners=["ana@x.io"],
                automerge=registry,
            )
        )
        session.flush()
        session.add(
            Proposal(
                product_id=product_id,
                key=f"k-{product_id}",
                title="t",
                changes={"dependencies": [FIX]},
            )
        )
    forge.ensure_project(product_id, source)
    repo = git.Repo(source)
    repo.git.checkout("-B", "work", "main")
    head = commit_files(source, {"requirements.txt": "pyarrow==14.0.1\n"}, "Upgrade pyarrow")
    repo.git.checkout("main")
    repo.close()
    forge.ensure_branch(BranchPush(product_id, EVERGREEN_BRANCH, head, source))
    state = forge.ensure_merge_request(
        MergeRequestParams(
            project=product_id,
            product_id=product_id,
            title=f"Upgrade pyarrow ({product_id})",
            description=_description(passed),
            proposal_key=f"k-{product_id}",
        )
    )
    return int(state.ref)


def _state(engine: Engine, product_id: str) -> str:
    with Session(engine) as session:
        return session.exec(
            select(MergeRequest.state).where(
                MergeRequest.product_id == product_id, MergeRequest.branch == EVERGREEN_BRANCH
            )
        ).one()


def _pin(forge: LocalForge, product_id: str) -> str:
    repo = git.Repo(forge.project_path(product_id))
    try:
        return repo.git.show("main:requirements.txt")
    finally:
        repo.close()


def test_opted_in_patch_fix_is_merged_after_the_grace_period_and_a_failing_one_is_not(
    engine: Engine, specfleet_home: Path, make_repo
) -> None:
    forge = LocalForge(engine, specfleet_home / "forge")
    _product(engine, forge, make_repo, "green", registry="security-patch")
    _product(engine, forge, make_repo, "failing", registry="security-patch", passed=False)
    _product(engine, forge, make_repo, "unopted")
    _product(engine, forge, make_repo, "by-spec", spec_opt="deterministic")

    early = run_automerge(engine, forge, GRACE)
    assert all(not o.merged for o in early)
    assert any("grace period" in r for o in early for r in o.reasons)
    assert _state(engine, "green") == "open"

    later = {o.product_id: o for o in run_automerge(engine, forge, GRACE, now=utcnow() + GRACE)}
    assert later["green"].merged and _state(engine, "green") == "merged"
    assert _pin(forge, "green") == "pyarrow==14.0.1"
    assert not later["failing"].merged and _state(engine, "failing") == "open"
    assert any("not verified green" in r for r in later["failing"].reasons)
    assert "unopted" not in later and _state(engine, "unopted") == "open"
    # the spec opts in at deterministic; with no fleet rules the policy cap is security-patch
    assert later["by-spec"].merged and later["by-spec"].reasons[0] == "opted in at security-patch"

    with Session(engine) as session:
        records = session.exec(select(AutomergeRecord).order_by(col(AutomergeRecord.id))).all()
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "mr.merge")).all()
    assert [r.product_id for r in records] == ["green", "by-spec"]
    assert records[0].level == "security-patch" and records[0].announced_at is None
    assert [r.id for r in unannounced_automerges(engine)] == [r.id for r in records]
    mark_announced(engine, [records[1].id or 0])
    assert [r.product_id for r in unannounced_automerges(engine)] == ["green"]
    assert {a.actor for a in audit} == {"specfleet-automerge"}

    # one click back: a revert merge request that restores the old pin once merged
    revert_id = open_revert(engine, forge, records[0].merge_request_id, "ana@x.io")
    forge.approve(revert_id, "ana@x.io")
    forge.merge(revert_id, "ana@x.io")
    assert _pin(forge, "green") == "pyarrow==14.0.0"
    with Session(engine) as session:
        assert session.get(AutomergeRecord, records[0].id).revert_merge_request_id == revert_id


def test_the_policy_set_caps_the_opt_in(engine: Engine, specfleet_home: Path, make_repo) -> None:
    """A policy set with ``automerge.max_level: never`` stops every automerge."""
    forge = LocalForge(engine, specfleet_home / "forge")
    _product(engine, forge, make_repo, "green", registry="deterministic")
    with session_scope(engine) as session:
        session.add(PolicySetRecord(version=1, content_hash="h", published_by="architect"))
        session.flush()
        session.add(
            PolicySetFleetRules(policy_set_version=1, body={"automerge": {"max_level": "never"}})
        )
    assert run_automerge(engine, forge, GRACE, now=utcnow() + GRACE) == []
    assert _state(engine, "green") == "open"


def test_a_minor_upgrade_is_beyond_security_patch() -> None:
    """The pure decision names each failed condition."""
    facts = review_facts(_description(True), {"dependencies": [{**FIX, "to": "15.0.0"}]})
    decision = decide_automerge(
        effective_level("deterministic", "security-patch"),
        facts,
        ["requirements.txt", "app.py"],
        "dataproduct.yaml",
        GRACE,
        GRACE,
    )
    assert not decision.merge
    assert "pyarrow 14.0.0 -> 15.0.0 is not a patch-level upgrade" in decision.reasons
    assert any("app.py" in r for r in decision.reasons)
