"""Rate limits: new merge requests over the hourly or per-owner limit wait (deferred) and go
out in priority order as capacity frees; real git repositories, the local forge, SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import git
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import (
    Evaluation,
    MergeRequest,
    PolicyRuleRecord,
    PolicySetRecord,
    Product,
    Proposal,
    session_scope,
)
from specfleet.core.db.types import utcnow
from specfleet.core.forges.local import LocalForge
from specfleet.core.forges.rate_limits import Capacity, Limits, Priority, Waiting, admit
from specfleet.core.settings import get_settings
from specfleet.worker.pipeline.apply import Candidate, DependencyChange
from specfleet.worker.pipeline.deferral import deferred_proposals, release_deferred
from specfleet.worker.pipeline.publish import publish
from tests.conftest import commit_files

SEVERITIES = {"ORG-CRIT": "critical", "ORG-HIGH": "high", "ORG-MED": "medium", "ORG-LOW": "low"}


def _kind(index: int) -> str:
    return ["security", "ORG-HIGH", "ORG-MED", "ORG-LOW", "freshness"][index % 5]


def _change(kind: str) -> DependencyChange:
    if kind == "security":
        why = "PYSEC-2023-238: arbitrary code execution (high severity)"
    elif kind == "freshness":
        why = "newer release 2.1.0 (pin is 400 days old)"
    else:
        why = f"{kind}: {SEVERITIES[kind]} rule asks for it"
    return DependencyChange("pyarrow", "requirements.txt", "14.0.0", "14.0.1", why)


@pytest.fixture
def source(make_repo) -> tuple[Path, str]:
    path = make_repo({"requirements.txt": "pyarrow==14.0.0\n"}, name="shared")
    repo = git.Repo(path)
    repo.git.checkout("-B", "work", "main")
    commit = commit_files(path, {"requirements.txt": "pyarrow==14.0.1\n"}, "upgrade")
    repo.git.checkout("main")
    repo.close()
    return path, commit


def _register(engine: Engine, count: int, owner_of=lambda i: f"owner{i}@x.io") -> None:
    with session_scope(engine) as session:
        session.add(PolicySetRecord(version=1, content_hash="h", published_by="architect"))
        session.flush()
        for rule_id, severity in SEVERITIES.items():
            session.add(
                PolicyRuleRecord(
                    policy_set_version=1,
                    rule_id=rule_id,
                    kind="dependency",
                    severity=severity,
                    title=rule_id,
                    body={},
                )
            )
        for i in range(count):
            session.add(
                Product(id=f"p{i:02d}", name=f"P{i}", repo_url="/nowhere", owners=[owner_of(i)])
            )
        session.flush()
        for i in range(count):
            session.add(
                Evaluation(id=i + 1, product_id=f"p{i:02d}", window="2026-W49", trigger="policy")
            )


def _publish(engine: Engine, forge: LocalForge, source: tuple[Path, str], i: int, key: str = ""):
    path, commit = source
    with Session(engine) as session:
        product = session.get(Product, f"p{i:02d}")
    kind = _kind(i)
    candidate = Candidate(
        worktree=path,
        git_dir=path,
        commit=commit,
        key=key or f"key-{i}",
        title=f"Upgrade pyarrow ({kind})",
        amendment_id="A1",
        amendment_text="",
        changes=(_change(kind),),
        claimed_rules=(kind,) if kind.startswith("ORG") else (),
    )
    return publish(
        engine=engine,
        forge=forge,
        product=product,
        owners=tuple(product.owners),
        evaluation_id=i + 1,
        mirror=path,
        candidate=candidate,
        description=f"product {i}",
    )


def _limits(
    monkeypatch: pytest.MonkeyPatch, hourly: int | None = None, per_owner: int | None = None
):
    if hourly is not None:
        monkeypatch.setenv("SPECFLEET_MR_HOURLY_LIMIT", str(hourly))
    if per_owner is not None:
        monkeypatch.setenv("SPECFLEET_MR_OPEN_PER_OWNER", str(per_owner))
    get_settings.cache_clear()


def _open_products(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(MergeRequest.product_id)
                .where(MergeRequest.state == "open")
                .order_by(col(MergeRequest.id))
            ).all()
        )


def test_fifty_products_with_ten_per_hour_open_ten_and_release_the_rest_by_priority(
    engine: Engine, specfleet_home: Path, source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publication affecting 50 products with a limit of 10/hour opens 10 and defers 40;
    each later hour releases 10 more: security fixes, then rules by severity, then freshness."""
    _limits(monkeypatch, hourly=10)
    _register(engine, 50)
    forge = LocalForge(engine, specfleet_home / "forge")
    arrival = list(range(50))
    random.Random(7).shuffle(arrival)
    outcomes = {i: _publish(engine, forge, source, i) for i in arrival}

    opened = _open_products(engine)
    assert opened == [f"p{i:02d}" for i in arrival[:10]]
    deferred = [p for p, _ in deferred_proposals(engine)]
    assert len(deferred) == 40
    assert all("deferred" in outcomes[i].reason for i in arrival[10:])
    assert all(
        p.deferred_reason and "10 new merge requests per hour" in p.deferred_reason
        for p in deferred
    )

    # the order they will go out in: tier, then severity, then the longest waiting
    waiting_kinds = [_kind(int(p.product_id[1:])) for p in deferred]
    rank = {"security": 0, "ORG-HIGH": 1, "ORG-MED": 2, "ORG-LOW": 3, "freshness": 4}
    assert waiting_kinds == sorted(waiting_kinds, key=rank.__getitem__)

    # another hour: nothing frees within the same hour
    assert release_deferred(engine, lambda _p: forge) == []
    later = utcnow()
    released_order: list[str] = []
    for hour in range(1, 5):
        batch = release_deferred(
            engine, lambda _p: forge, now=later + dt.timedelta(hours=hour, minutes=1)
        )
        assert len(batch) == 10
        released_order += [r.product_id for r in batch]
    assert released_order == [p.product_id for p in deferred]
    assert len(_open_products(engine)) == 50
    assert deferred_proposals(engine) == []
    with Session(engine) as session:
        row = session.exec(
            select(MergeRequest).where(MergeRequest.product_id == deferred[0].product_id)
        ).one()
        assert row.description == f"product {int(deferred[0].product_id[1:])}"
        assert row.proposal_id is not None


def test_owner_limit_defers_until_one_of_their_merge_requests_is_merged(
    engine: Engine, specfleet_home: Path, source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 open merge requests per owner, the owner's third product waits until one merges;
    another owner's product is not held back; a newer proposal supersedes a deferred one."""
    _limits(monkeypatch, per_owner=2)
    _register(engine, 4, owner_of=lambda i: "ana@x.io" if i < 3 else "bo@x.io")
    forge = LocalForge(engine, specfleet_home / "forge")
    for i in range(4):
        _publish(engine, forge, source, i)
    assert _open_products(engine) == ["p00", "p01", "p03"]
    [(waiting, _)] = deferred_proposals(engine)
    assert waiting.product_id == "p02" and "ana@x.io already has 2" in (
        waiting.deferred_reason or ""
    )

    _publish(engine, forge, source, 2, key="key-2b")  # a newer proposal for the waiting product
    [(waiting, _)] = deferred_proposals(engine)
    assert waiting.key == "key-2b"
    assert release_deferred(engine, lambda _p: forge) == []

    with Session(engine) as session:
        first = session.exec(select(MergeRequest).where(MergeRequest.product_id == "p00")).one()
    forge.approve(first.id or 0, "ana@x.io")
    forge.merge(first.id or 0, "ana@x.io")
    [released] = release_deferred(engine, lambda _p: forge)
    assert released.product_id == "p02"
    with Session(engine) as session:
        row = session.exec(select(MergeRequest).where(MergeRequest.product_id == "p02")).one()
        states = {
            p.key: p.state
            for p in session.exec(select(Proposal).where(Proposal.product_id == "p02"))
        }
    assert row.proposal_key == "key-2b" and row.state == "open"
    assert states == {"key-2": "superseded", "key-2b": "proposed"}


def test_admission_is_pure_and_counts_every_owner_of_a_product() -> None:
    """The decision alone: a product with two owners is held back when either is full."""
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    shared = Waiting(1, "a", ("x@x.io", "y@x.io"), Priority(False, "low", now))
    solo = Waiting(2, "b", ("z@x.io",), Priority(True, None, now))
    result = admit([shared, solo], Capacity(0, {"Y@x.io": 1}), Limits(None, 1))
    assert [w.product_id for w in result.admitted] == ["b"]
    assert "y@x.io already has 1" in (result.reason_for(1) or "")
    assert Limits(10, None).tightened_by(Limits(5, 3)) == Limits(5, 3)


def test_a_policy_pack_tightens_the_limits_and_bad_fleet_rules_are_refused(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fleet.yaml in a pack is published with the set; the stricter of it and the settings
    applies; an unknown key or a negative limit is refused with the file and line."""
    import shutil

    from specfleet.core.errors import PolicyPackInvalid
    from specfleet.policies.packs import load_pack
    from specfleet.policies.store import publish as publish_pack
    from specfleet.worker.pipeline.deferral import current_limits, latest_fleet_rules
    from tests.conftest import REPO_ROOT

    pack = tmp_path / "pack"
    shutil.copytree(REPO_ROOT / "policies/pack/v1", pack)
    (pack / "fleet.yaml").write_text(
        "merge_requests:\n  hourly_limit: 5\n  owners_merge: false\n  merged_by: the platform team\n"
    )
    _limits(monkeypatch, hourly=10, per_owner=3)
    publish_pack(engine, load_pack(pack), "limits", "architect")
    assert current_limits(engine) == Limits(5, 3)
    assert latest_fleet_rules(engine)["merge_requests"]["owners_merge"] is False

    (pack / "fleet.yaml").write_text("merge_requests:\n  hourly_limit: -1\nautomerge:\n  max: x\n")
    with pytest.raises(PolicyPackInvalid) as refused:
        load_pack(pack)
    text = "\n".join(problem.render() for problem in refused.value.problems)
    assert "fleet.yaml" in text and "hourly_limit" in text and "max" in text
