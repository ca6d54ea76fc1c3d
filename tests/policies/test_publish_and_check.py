"""Publishing policy sets on SQLite and PostgreSQL, checking products, compliance history."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from specfleet.core.db import ComplianceRecord, Evaluation
from specfleet.core.git import MirrorCache
from specfleet.core.health.advisories import OsvDirectory
from specfleet.core.health.releases import IndexClient
from specfleet.core.health.report import check_health
from specfleet.core.registry import Registration, Registry
from specfleet.core.spec import load_spec
from specfleet.policies.check import check_product
from specfleet.policies.compliance import compliance_matrix, record_check, rollout
from specfleet.policies.findings import Finding
from specfleet.policies.packs import load_pack
from specfleet.policies.store import list_policy_sets, load_policy_set, publish
from specfleet.scheduler.fanout import queue_policy_evaluations
from tests.conftest import EXAMPLES, RepoFactory
from tests.support.fake_index import IndexScript, fake_index

PACK = Path(__file__).resolve().parents[2] / "policies" / "pack"
ADVISORIES = Path(__file__).resolve().parents[1] / "fixtures" / "advisories"


def no_semgrep(repo: Path, rules: object, files: object) -> list[Finding]:
    return []


@pytest.fixture
def registered(engine: Engine, make_repo: RepoFactory, tmp_path: Path) -> list[str]:
    registry = Registry(engine, MirrorCache(tmp_path / "mirrors"), "platform@example.com")
    ids = []
    for name in ("orders", "customer_revenue", "store_footfall"):
        repo = make_repo(source=EXAMPLES / name, name=name)
        ids.append(registry.add(Registration(repo=str(repo))).product_id)
    return ids


def test_publish_versions_and_no_op(engine: Engine) -> None:
    """Publishing creates v1, then v2 for new content; identical content publishes nothing."""
    first = publish(engine, load_pack(PACK / "v1"), "initial pack", "arch@example.com")
    assert first.created and first.policy_set.version == 1
    assert len(first.diff.added) == len(first.policy_set.rules)
    again = publish(engine, load_pack(PACK / "v1"), "again", "arch@example.com")
    assert not again.created and again.policy_set.version == 1
    second = publish(engine, load_pack(PACK / "v2"), "pandas floor", "arch@example.com")
    assert second.created and second.policy_set.version == 2
    assert [rule.id for rule in second.diff.added] == ["ORG-PY-004"]
    assert [(record.version, count) for record, count in list_policy_sets(engine)] == [
        (2, len(second.policy_set.rules)),
        (1, len(first.policy_set.rules)),
    ]
    stored = load_policy_set(engine, 2)
    assert stored.rules == second.policy_set.rules
    assert stored.semgrep_files == second.policy_set.semgrep_files
    back = publish(engine, load_pack(PACK / "v1"), "roll back", "arch@example.com")
    assert back.created and back.policy_set.version == 3
    assert [rule.id for rule in back.diff.removed] == ["ORG-PY-004"]


def test_publishing_reports_and_queues_newly_affected_products(
    engine: Engine, registered: list[str]
) -> None:
    """v2's pandas rule is scoped to the pandas tag: only orders is affected and queued."""
    publish(engine, load_pack(PACK / "v1"), "initial", "arch@example.com")
    outcome = publish(engine, load_pack(PACK / "v2"), "pandas", "arch@example.com")
    assert outcome.affected == {"ORG-PY-004": ["orders"]}
    assert queue_policy_evaluations(engine, ["orders"], 2) == 1
    assert queue_policy_evaluations(engine, ["orders"], 2) == 0  # idempotent
    with Session(engine) as session:
        (evaluation,) = session.exec(select(Evaluation)).all()
    assert (evaluation.product_id, evaluation.trigger, evaluation.status) == (
        "orders",
        "policy",
        "queued",
    )


def test_check_reports_example_violations_with_file_and_line(tmp_path: Path) -> None:
    """orders violates the vulnerability and pin-age rules at requirements.txt lines."""
    repo = Path(shutil.copytree(EXAMPLES / "orders", tmp_path / "orders"))
    spec = load_spec(repo / "dataproduct.yaml")
    pack = load_pack(PACK / "v2")
    with fake_index(IndexScript.recorded()) as url:
        health = check_health(repo, spec, IndexClient(url), OsvDirectory(ADVISORIES))
    result = check_product(
        repo, spec, "dataproduct.yaml", pack.rules, pack.semgrep_files, health, no_semgrep
    )
    vulnerable = result.findings_of("ORG-SEC-001")
    assert {(f.file, f.line) for f in vulnerable} == {
        ("requirements.txt", 9),
        ("requirements.txt", 12),
    }
    assert all(f.fixable for f in vulnerable)
    assert any("PYSEC-2023-238" in f.message for f in vulnerable)
    (pandas,) = result.findings_of("ORG-PY-004")
    assert pandas.line == 5 and "does not satisfy pandas>=2.2" in pandas.message
    assert result.statuses["ORG-SEC-001"] == "fail"
    assert result.statuses["ORG-SPEC-001"] == "pass"
    assert result.statuses["ORG-GUIDE-001"] == "unknown"  # judged by the planner only
    assert result.findings_of("ORG-GUIDE-001")[0].status == "not-checkable"


def test_spec_rules_point_at_the_spec_line(tmp_path: Path) -> None:
    """A column without why, an unclassified e-mail and an untested requirement are located."""
    text = (Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid.yaml").read_text()
    text = text.replace(
        "        why: Reconciliation compares amounts to the cent (amendment A1).\n", ""
    )
    text = text.replace("        pii: direct\n", "")
    text = text.replace("    tests: [tests/test_invoices.py::test_amount_precision]\n", "")
    repo = tmp_path / "invoices"
    repo.mkdir()
    (repo / "dataproduct.yaml").write_text(text)
    spec = load_spec(repo / "dataproduct.yaml")
    rules = [rule for rule in load_pack(PACK / "v1").rules if rule.kind == "spec"]
    result = check_product(repo, spec, "dataproduct.yaml", rules, {}, None, no_semgrep)
    lines = text.splitlines()

    def line_of(finding: Finding) -> str:
        assert finding.file == "dataproduct.yaml" and finding.line is not None
        return lines[finding.line - 1].strip()

    (why,) = result.findings_of("ORG-SPEC-001")
    assert "invoices.amount does not say why" in why.message
    assert line_of(why) == "- name: amount"
    (pii,) = result.findings_of("ORG-PRIV-001")
    assert "customer_email" in pii.message and line_of(pii) == "- name: customer_email"
    (untested,) = result.findings_of("ORG-SPEC-002")
    assert "R2 names no test" in untested.message and line_of(untested) == "- id: R2"
    assert result.statuses == {
        "ORG-SPEC-001": "fail",
        "ORG-PRIV-001": "fail",
        "ORG-SPEC-002": "fail",
    }


def test_compliance_matrix_and_rollout(
    engine: Engine, registered: list[str], tmp_path: Path
) -> None:
    """Checks are recorded per product and rule; the rollout shows the fleet week by week."""
    outcome = publish(engine, load_pack(PACK / "v1"), "initial", "arch@example.com")
    rules = [rule for rule in outcome.policy_set.rules if rule.kind == "spec"]
    week1 = dt.datetime(2026, 11, 9, 8, tzinfo=dt.UTC)
    week2 = dt.datetime(2026, 11, 16, 8, tzinfo=dt.UTC)
    for name in registered:
        repo = EXAMPLES / name
        spec = load_spec(repo / "dataproduct.yaml")
        result = check_product(
            repo, spec, "dataproduct.yaml", rules, {}, None, no_semgrep, 1, week1
        )
        assert record_check(engine, result) == len(rules)
    with Session(engine) as session:
        rows = session.exec(select(ComplianceRecord)).all()
    # every failing finding is stored by its stable identity (rule + what it is about)
    assert rows and all(
        row.finding_ids is not None and len(row.finding_ids) == row.findings for row in rows
    )
    assert all(i.startswith(f"{row.rule_id}:") for row in rows for i in row.finding_ids or [])
    matrix = compliance_matrix(engine, [rule.id for rule in rules])
    assert matrix.products == ("customer_revenue", "orders", "store_footfall")
    assert matrix.passing("ORG-SPEC-001") == 3
    weeks = rollout(engine, "ORG-SPEC-001", week1.date(), week2.date())
    assert [(w.window, w.passing, w.checked) for w in weeks] == [
        ("2026-W46", 3, 3),
        ("2026-W47", 3, 0),
    ]


def test_scope_naming_an_unregistered_product_is_a_warning(
    engine: Engine, registered: list[str], tmp_path: Path
) -> None:
    """A rule scoped to a product that is not registered still publishes, with a warning."""
    pack = Path(shutil.copytree(PACK / "v1", tmp_path / "pack"))
    rule = pack / "rules" / "ORG-SPEC-002.yaml"
    rule.write_text(rule.read_text() + "scope:\n  products: [orders, ghost]\n")
    outcome = publish(engine, load_pack(pack), "scoped", "arch@example.com")
    assert outcome.created
    assert outcome.unknown_products == {"ORG-SPEC-002": ["ghost"]}
    assert outcome.affected["ORG-SPEC-002"] == ["orders"]
