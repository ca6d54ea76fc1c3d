"""The evaluation pipeline end to end on the examples: real git repositories, the local forge,
the recorded package index over HTTP, the OSV advisory fixtures, real builds and tests in the
sandbox, SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from specfleet.core.db import (
    AuditEntry,
    Evaluation,
    MergeRequest,
    Proposal,
    StageResult,
    ensure_schema,
    make_engine,
)
from specfleet.core.forges.interface import EVERGREEN_BRANCH
from specfleet.core.forges.local import LocalForge
from specfleet.core.git import MirrorCache
from specfleet.core.health.advisories import OsvDirectory
from specfleet.core.health.releases import DiskFactsCache, IndexClient
from specfleet.core.registry.decisions import Registration
from specfleet.core.registry.store import Registry
from specfleet.examples import materialise_examples
from specfleet.policies.packs import load_pack
from specfleet.policies.store import publish
from specfleet.worker.pipeline import (
    EvaluationResult,
    PipelineDeps,
    queue_evaluation,
    run_evaluation,
)
from specfleet.worker.verify.environments import EnvironmentCache
from specfleet.worker.verify.results import SideResultCache
from tests.conftest import commit_files
from tests.support.fake_index import IndexScript, fake_index

pytestmark = pytest.mark.network  # product environments are installed from PyPI by uv

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / "policies" / "pack"
ADVISORIES = ROOT / "tests" / "fixtures" / "advisories"
WINDOW = "2026-W48"


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    with fake_index(IndexScript.recorded()) as url:
        yield url


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnvironmentCache, SideResultCache]:
    """Environments and verification evidence shared by the module, as a worker shares them."""
    root = tmp_path_factory.mktemp("pipeline-caches")
    return EnvironmentCache(root / "environments"), SideResultCache(root / "verifications")


@dataclass
class Fleet:
    engine: Engine
    deps: PipelineDeps
    forge: LocalForge
    repos: dict[str, Path]

    def evaluate(
        self, product: str, window: str = WINDOW, trigger: str = "manual"
    ) -> EvaluationResult:
        return run_evaluation(queue_evaluation(self.engine, product, window, trigger), self.deps)

    def stages(self, evaluation_id: int) -> list[str]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(StageResult)
                .where(StageResult.evaluation_id == evaluation_id)
                .order_by(col(StageResult.id))
            ).all()
        return [row.stage for row in rows]

    def merge_requests(self, product: str) -> list[MergeRequest]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(MergeRequest)
                    .where(MergeRequest.product_id == product)
                    .order_by(col(MergeRequest.id))
                ).all()
            )

    def publish_pack(self, pack: Path, message: str) -> None:
        publish(self.engine, load_pack(pack), message, "architect@example.com")


def make_fleet(
    engine: Engine, root: Path, index_url: str, caches: tuple[EnvironmentCache, SideResultCache]
) -> Fleet:
    examples = materialise_examples(root / "repos")
    repos = {repo.product_id: repo.path for repo in examples}
    registry = Registry(engine, MirrorCache(root / "registry-mirrors"), "platform@example.com")
    for example in examples:  # shop_marts lives on "trunk", the others on "main"
        registry.add(Registration(repo=str(example.path), branch=example.branch))
    forge = LocalForge(engine, root / "forge")
    deps = PipelineDeps(
        engine=engine,
        mirrors=MirrorCache(root / "mirrors"),
        index=IndexClient(index_url, cache=DiskFactsCache(root / "index")),
        advisories=OsvDirectory(ADVISORIES),
        forge_for=lambda _product: forge,
        environments=caches[0],
        results=caches[1],
        work_dir=root / "work",
    )
    fleet = Fleet(engine, deps, forge, repos)
    fleet.publish_pack(PACKS / "v1", "initial pack")
    return fleet


@pytest.fixture
def fleet(
    tmp_path: Path, index_url: str, caches: tuple[EnvironmentCache, SideResultCache]
) -> Iterator[Fleet]:
    """The three examples registered on SQLite, policy set v1 published, the local forge."""
    engine = make_engine(f"sqlite:///{tmp_path / 'specfleet.db'}")
    ensure_schema(engine)
    yield make_fleet(engine, tmp_path, index_url, caches)
    engine.dispose()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_orders_is_proposed_and_the_same_inputs_are_a_noop(
    engine: Engine,
    tmp_path: Path,
    index_url: str,
    caches: tuple[EnvironmentCache, SideResultCache],
) -> None:
    """orders: a verified MR upgrading pyarrow and requests; a rerun stops after the fingerprint."""
    fleet = make_fleet(engine, tmp_path, index_url, caches)
    first = fleet.evaluate("orders")
    assert first.outcome == "proposed", (first.error, first.summary.get("reason"))
    assert first.merge_request_url == "specfleet://orders/merge_requests/1"

    [mr] = fleet.merge_requests("orders")
    assert mr.state == "open" and not mr.draft and mr.branch == EVERGREEN_BRANCH
    description = mr.description
    assert "| pyarrow | 14.0.0 | 14.0.1 | requirements.txt | PYSEC-2023-238" in description
    assert "| requests | 2.28.2 | 2.31.0 | requirements.txt | PYSEC-2023-74" in description
    assert "**Verification: passed.**" in description
    for section in ("### Build and tests", "### Data on the fixtures", "### Failure modes"):
        assert section in description
    assert (
        "## Spec amendment A5" in description and "none — deterministic remediators" in description
    )
    assert (
        "| trigger | a manual evaluation |" in description and "| policy set | v1 |" in description
    )

    # the branch on the forge is a real commit on top of the product's main
    project = fleet.forge.project_path("orders")
    head = git(project, "rev-parse", EVERGREEN_BRANCH).strip()
    main = subprocess.run(
        ["git", "-C", str(fleet.repos["orders"]), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert head == mr.head_commit and git(project, "rev-parse", f"{head}^").strip() == main
    requirements = git(project, "show", f"{head}:requirements.txt")
    assert "pyarrow==14.0.1" in requirements and "requests==2.31.0" in requirements
    spec = git(project, "show", f"{head}:dataproduct.yaml")
    assert spec.count("- id: A5") == 1 and "pyarrow 14.0.0 → 14.0.1" in spec

    with Session(engine) as session:
        [proposal] = session.exec(select(Proposal).where(Proposal.product_id == "orders")).all()
        assert proposal.key == mr.proposal_key and proposal.state == "proposed"
        assert mr.proposal_id == proposal.id
    assert fleet.stages(first.evaluation_id) == [
        "fetch",
        "fingerprint",
        "load-spec",
        "assess",
        "plan",
        "apply",
        "verify",
        "publish",
    ]

    # the same inputs again: no clone, no scan, no build
    mirror = fleet.deps.mirrors.path_for(str(fleet.repos["orders"]))
    fetched_before = (
        (mirror / "FETCH_HEAD").stat().st_mtime_ns if (mirror / "FETCH_HEAD").exists() else None
    )
    second = fleet.evaluate("orders")
    assert second.outcome == "no-op" and second.summary["same_as"] == first.evaluation_id
    assert fleet.stages(second.evaluation_id) == ["fetch", "fingerprint"]
    fetched_after = (
        (mirror / "FETCH_HEAD").stat().st_mtime_ns if (mirror / "FETCH_HEAD").exists() else None
    )
    assert fetched_after == fetched_before
    assert len(fleet.merge_requests("orders")) == 1

    # a redelivered task for a finished evaluation returns the record without work
    again = run_evaluation(first.evaluation_id, fleet.deps)
    assert again.outcome == "proposed" and again.merge_request_url == first.merge_request_url
    assert len(fleet.stages(first.evaluation_id)) == 8
    assert len(fleet.merge_requests("orders")) == 1
    with Session(engine) as session:
        audited = session.exec(
            select(AuditEntry).where(AuditEntry.subject_type == "evaluation")
        ).all()
    assert {entry.action for entry in audited} == {"evaluation.proposed", "evaluation.no-op"}


def test_a_healthy_product_has_nothing_to_change(fleet: Fleet) -> None:
    """store_footfall: healthy pins and no fixable finding -> no-change, saying why, no MR."""
    result = fleet.evaluate("store_footfall")
    assert result.outcome == "no-change", result.error
    assert result.reason  # e.g. "all pins healthy, no rule violated"
    assert "plan" in fleet.stages(result.evaluation_id)
    assert "verify" not in fleet.stages(result.evaluation_id)
    assert fleet.merge_requests("store_footfall") == []


def test_a_closed_proposal_is_not_proposed_again(fleet: Fleet, tmp_path: Path) -> None:
    """The owner closes the MR; a policy change that leaves the change alone -> suppressed."""
    first = fleet.evaluate("orders")
    assert first.outcome == "proposed", first.error
    [mr] = fleet.merge_requests("orders")
    fleet.forge.close(mr.id or 0, "ana.silva@example.com")

    # a new policy version (a reworded rule) changes the inputs but not the proposal
    pack = Path(shutil.copytree(PACKS / "v1", tmp_path / "pack-v1b"))
    rule = pack / "rules" / "ORG-SPEC-002.yaml"
    rule.write_text(rule.read_text().replace("title: ", "title: (reworded) ", 1))
    fleet.publish_pack(pack, "reword a spec rule")
    second = fleet.evaluate("orders", trigger="policy")
    assert second.outcome == "suppressed", (second.error, second.reason)
    assert "closed" in second.reason
    assert [row.state for row in fleet.merge_requests("orders")] == ["closed"]


def test_a_new_policy_version_updates_the_open_merge_request_in_place(fleet: Fleet) -> None:
    """Policy set v2 (pandas >= 2.2) -> a new proposal replaces the open MR's, still one MR."""
    first = fleet.evaluate("orders")
    assert first.outcome == "proposed", first.error
    [before] = fleet.merge_requests("orders")

    fleet.publish_pack(PACKS / "v2", "pandas floor")
    second = fleet.evaluate("orders", trigger="policy")
    assert second.outcome == "proposed", (second.error, second.reason)
    [after] = fleet.merge_requests("orders")
    assert after.id == before.id and after.state == "open"
    assert after.proposal_key != before.proposal_key and after.head_commit != before.head_commit
    assert "| pandas | 1.5.3 | 2.2" in after.description
    assert "ORG-PY-004" in after.description and "| policy set | v2 |" in after.description
    with Session(fleet.engine) as session:
        states = {
            row.key: row.state
            for row in session.exec(select(Proposal).where(Proposal.product_id == "orders"))
        }
    assert states == {before.proposal_key: "superseded", after.proposal_key: "proposed"}


def test_a_vanished_repository_fails_clearly_and_others_carry_on(
    fleet: Fleet, tmp_path: Path
) -> None:
    """store_footfall's repository is gone: failed, naming it; customer_revenue still answers."""
    gone = fleet.repos["store_footfall"]
    shutil.move(gone, tmp_path / "moved-away")
    failed = fleet.evaluate("store_footfall")
    assert failed.outcome == "failed"
    assert (
        failed.error is not None and str(gone) in failed.error and "does not exist" in failed.error
    )
    assert fleet.stages(failed.evaluation_id) == ["fetch"]

    other = fleet.evaluate("customer_revenue")
    assert other.outcome in ("proposed", "no-change"), (other.outcome, other.error)


def test_an_invalid_spec_fails_with_the_loader_message(fleet: Fleet) -> None:
    """A commit that breaks dataproduct.yaml: failed with the file, line and field."""
    repo = fleet.repos["store_footfall"]
    text = (repo / "dataproduct.yaml").read_text()
    commit_files(repo, {"dataproduct.yaml": text.replace("spec_version: 1", "spec_version: 7", 1)})
    result = fleet.evaluate("store_footfall")
    assert result.outcome == "failed"
    assert result.error is not None and "dataproduct.yaml:1" in result.error
    assert "spec_version" in result.error
    assert fleet.stages(result.evaluation_id) == ["fetch", "fingerprint", "load-spec"]

    # a failure holds no key: the same inputs are evaluated again, not skipped as a no-op
    again = fleet.evaluate("store_footfall")
    assert again.outcome == "failed" and again.evaluation_id != result.evaluation_id


@pytest.mark.postgres
def test_duplicate_evaluations_running_together_open_one_merge_request(
    postgres_url: str,
    tmp_path: Path,
    index_url: str,
    caches: tuple[EnvironmentCache, SideResultCache],
) -> None:
    """Two evaluations of orders for one window at once (PostgreSQL): one MR, one does the work."""
    engine = make_engine(postgres_url)
    ensure_schema(engine)
    fleet = make_fleet(engine, tmp_path, index_url, caches)
    ids = [queue_evaluation(engine, "orders", WINDOW, trigger) for trigger in ("weekly", "manual")]
    results: dict[int, EvaluationResult] = {}

    def run(evaluation_id: int) -> None:
        results[evaluation_id] = run_evaluation(evaluation_id, fleet.deps)

    threads = [threading.Thread(target=run, args=(evaluation_id,)) for evaluation_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(result.outcome for result in results.values())
    assert outcomes in (["no-op", "proposed"], ["proposed", "unchanged"]), [
        (r.outcome, r.error, r.reason) for r in results.values()
    ]
    assert len(fleet.merge_requests("orders")) == 1
    with Session(engine) as session:
        rows = session.exec(select(Evaluation).where(Evaluation.product_id == "orders")).all()
    assert all(row.status == "done" for row in rows)
    engine.dispose()


def test_a_build_that_hangs_ends_as_a_clear_failure(fleet: Fleet, tmp_path: Path) -> None:
    """A product whose build never ends (limit 5 s): failed, saying the build was killed."""
    repo = Path(shutil.copytree(ROOT / "examples" / "store_footfall", tmp_path / "slow"))
    spec = (repo / "dataproduct.yaml").read_text()
    spec = spec.replace("id: store_footfall", "id: slow_footfall", 1)
    spec = spec.replace(
        "build: python -m footfall.build --input {inputs} --output {outputs}",
        "build: python -c 'import time; time.sleep(3600)'",
        1,
    )
    spec = spec.replace("max_build_seconds: 30", "max_build_seconds: 5", 1)
    (repo / "dataproduct.yaml").write_text(spec)
    # a vulnerable pin, so there is a candidate to verify
    (repo / "requirements.txt").write_text("pytest==8.3.3\nrequests==2.28.2\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "slow product",
        ],
        check=True,
    )
    Registry(fleet.engine, MirrorCache(tmp_path / "m2"), "platform@example.com").add(
        Registration(repo=str(repo))
    )
    result = fleet.evaluate("slow_footfall")
    assert result.outcome == "failed", (result.outcome, result.reason)
    assert result.error is not None and "does not build" in result.error
    assert "killed" in result.error
    assert fleet.merge_requests("slow_footfall") == []
    assert "Build and tests" in result.summary["verification"]
