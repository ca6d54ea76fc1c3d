"""The pipeline's pure parts: the no-op decision, the amendment text edit, the merge-request
description, finding identity across an upgrade, and queueing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine

from specfleet.core.db import Product, session_scope
from specfleet.core.errors import InputError, ProductNotFound
from specfleet.core.spec import check_spec_bytes, load_spec
from specfleet.policies.findings import Finding
from specfleet.worker.pipeline import queue_evaluation
from specfleet.worker.pipeline.apply import DependencyChange, amendment_item, append_amendment
from specfleet.worker.pipeline.description import DescriptionFacts, NewRule, render_description
from specfleet.worker.pipeline.fingerprint import FingerprintInputs, PreviousEvaluation, decide_noop
from specfleet.worker.pipeline.plan import LLMUsage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INPUTS = FingerprintInputs("c1", "reg", "rules", "facts", "deterministic-v1")
CHANGES = (
    DependencyChange("pyarrow", "requirements.txt", "14.0.0", "14.0.1", "PYSEC-2023-238: affected"),
    DependencyChange("requests", "requirements.txt", "2.28.2", "2.31.0", "PYSEC-2023-74: affected"),
)


def previous(inputs: FingerprintInputs = INPUTS) -> PreviousEvaluation:
    return PreviousEvaluation(
        7, "2026-W47", inputs.fingerprint(), inputs.commit, inputs.as_dict(), ()
    )


def test_first_evaluation_is_never_a_noop() -> None:
    """No earlier answer: the evaluation goes on."""
    decision = decide_noop(None, INPUTS)
    assert not decision.noop and "first" in decision.reason


def test_equal_inputs_are_a_noop_pointing_at_the_earlier_evaluation() -> None:
    """Same commit, rules, facts, planner and registration: no-op, same_as the earlier one."""
    decision = decide_noop(previous(), FingerprintInputs(**INPUTS.as_dict()))
    assert decision.noop and decision.same_as == 7


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("rules", "the policy rules that apply"),
        ("facts", "the dependency-health facts"),
        ("planner", "the planner"),
        ("commit", "the branch tip"),
    ],
)
def test_a_changed_input_is_named(field: str, named: str) -> None:
    """Any changed input means a real evaluation, and the reason says which one changed."""
    changed = FingerprintInputs(**{**INPUTS.as_dict(), field: "other"})
    decision = decide_noop(previous(), changed)
    assert not decision.noop and decision.reason == f"changed: {named}"
    assert changed.fingerprint() != INPUTS.fingerprint()


def orders_amendment() -> dict[str, object]:
    spec = load_spec(EXAMPLES / "orders" / "dataproduct.yaml")
    return amendment_item(spec, CHANGES, 2, dt.date(2026, 11, 23))


def test_the_amendment_is_appended_and_the_rest_of_the_spec_kept() -> None:
    """orders has A1-A4: A5 is appended; every original line stays, and the spec stays valid."""
    text = (EXAMPLES / "orders" / "dataproduct.yaml").read_text()
    amended, block = append_amendment(text, orders_amendment())
    assert amended.startswith(text.rstrip("\n"))
    check = check_spec_bytes(amended.encode(), "dataproduct.yaml")
    assert check.spec is not None, [p.render() for p in check.problems]
    last = check.spec.amendments[-1]
    assert last.id == "A5" and last.date == dt.date(2026, 11, 23)
    assert "pyarrow 14.0.0 → 14.0.1" in last.change and "PYSEC-2023-74" in last.why
    assert block.lstrip().startswith("- id: A5")
    # the requirements are never touched
    spec = load_spec(EXAMPLES / "orders" / "dataproduct.yaml")
    assert check.spec.requirements == spec.requirements


def test_the_amendment_lands_in_the_list_when_other_keys_follow_it() -> None:
    """A spec whose amendments are not last: the item joins the list, the next key stays."""
    text = (EXAMPLES / "orders" / "dataproduct.yaml").read_text()
    head, _, amendments = text.partition("amendments:")
    head_main, _, requirements = head.partition("requirements:")
    reordered = f"{head_main}amendments:{amendments.rstrip()}\n\nrequirements:{requirements}"
    amended, _ = append_amendment(reordered, orders_amendment())
    check = check_spec_bytes(amended.encode(), "dataproduct.yaml")
    assert check.spec is not None, [p.render() for p in check.problems]
    assert [a.id for a in check.spec.amendments][-1] == "A5"
    assert len(check.spec.requirements) == 8


def test_a_spec_without_amendments_gets_the_list() -> None:
    """No amendments key yet: one is added at the end with the item."""
    amended, _ = append_amendment("spec_version: 1\nid: x\n", {"id": "A1", "why": "because"})
    assert amended.endswith("amendments:\n  - id: A1\n    why: because\n")


def facts(**changes: object) -> DescriptionFacts:
    values: dict[str, object] = {
        "product_id": "orders",
        "product_name": "Orders",
        "evaluation_id": 12,
        "trigger": "policy",
        "window": "2026-W48",
        "policy_version": 2,
        "baseline_policy_version": 1,
        "new_rules": (NewRule("ORG-PY-004", "pandas 2.2 or newer", "medium", "dependency"),),
        "resolved_rules": ("ORG-PY-004",),
        "changes": CHANGES,
        "amendment_id": "A5",
        "amendment_text": "  - id: A5\n    why: x\n",
        "verification": "**Verification: passed.**\n\n### Build and tests\n",
        "llm": LLMUsage(),
        "base_branch": "main",
        "base_commit": "a" * 40,
        "candidate_commit": "b" * 40,
        "proposal_key": "c" * 64,
    }
    values.update(changes)
    return DescriptionFacts(**values)  # type: ignore[arg-type]


def test_the_description_answers_an_owners_questions() -> None:
    """Trigger, policy version, new rules, the changes table, the amendment, verification, LLM."""
    text = render_description(facts())
    assert "| trigger | a newly published policy set |" in text
    assert "| policy set | v2 |" in text and "policy set v1" in text
    assert (
        "| ORG-PY-004 | medium | dependency | pandas 2.2 or newer | resolves its findings |" in text
    )
    assert "| pyarrow | 14.0.0 | 14.0.1 | requirements.txt | PYSEC-2023-238: affected |" in text
    assert "## Spec amendment A5" in text and "```yaml\n  - id: A5" in text
    assert "**Verification: passed.**" in text
    assert "none — deterministic remediators" in text


def test_the_description_stays_bounded_and_its_tables_intact() -> None:
    """A huge report is cut with a note; a '|' in a reason cannot break a table row."""
    many = tuple(
        DependencyChange(f"pkg{i}", "requirements.txt", "1.0", "1.1", "a | b") for i in range(100)
    )
    text = render_description(facts(changes=many, verification="x" * 200_000))
    assert len(text) < 60_000
    assert "… and 70 more" in text and "more characters in specfleet's record" in text
    assert "| pkg0 | 1.0 | 1.1 | requirements.txt | a \\| b |" in text
    usage = render_description(facts(llm=LLMUsage(3, 12000, 800, 0.0123)))
    assert "| 3 | 12000 (0 cached, 12000 not) | 800 | $0.0123 |" in usage


def test_the_description_names_the_path_rounds_cached_tokens_and_a_failed_llm() -> None:
    """Issue 16: which path produced the MR, in how many rounds, and when the LLM failed."""
    usage = LLMUsage(
        2, 9000, 400, 0.01, rounds=2, cached_prompt_tokens=6000, path="deterministic",
        llm_failure="round 2: the LLM endpoint timed out after 60 s",
    )  # fmt: skip
    text = render_description(facts(llm=usage))
    assert "| the deterministic remediators | 2 | 2 | 9000 (6000 cached, 3000 not) |" in text
    assert "**The LLM path failed** (round 2: the LLM endpoint timed out after 60 s)" in text
    assert "the deterministic remediators' change was proposed instead" in text
    llm = render_description(facts(llm=LLMUsage(1, 100, 10, 0.0, rounds=1, path="llm")))
    assert "| the LLM's plan | 1 | 1 |" in llm and "LLM path failed" not in llm


def test_a_violation_that_persists_on_the_same_pin_is_not_new() -> None:
    """Same rule on the same package after an upgrade keeps the baseline's identity."""

    def dep(rule: str, message: str, line: int, package: str, advisory: str | None = None):
        return Finding(
            rule, "dependency", "medium", message, "r.txt", line,
            package=package, advisory=advisory,
        )  # fmt: skip

    before = [
        dep("ORG-DEP-003", "pyarrow 14.0.0 is 1117 days old", 9, "pyarrow"),
        dep("ORG-SEC-001", "pyarrow 14.0.0 has PYSEC-1", 9, "pyarrow", "PYSEC-1"),
    ]
    after = [
        dep("ORG-DEP-003", "pyarrow 14.0.1 is 1110 days old", 9, "pyarrow"),
        dep("ORG-DEP-003", "numpy 1.0 is 2000 days old", 4, "numpy"),
    ]
    assert before[0].key() == after[0].key()  # persisted: neither resolved nor introduced
    assert after[1].key() not in {finding.key() for finding in before}  # another pin: new


def test_queueing_is_idempotent_and_checks_its_input(engine: Engine) -> None:
    """One open evaluation per product, window and trigger; bad product or window refused."""
    with session_scope(engine) as session:
        session.add(Product(id="orders", name="Orders", repo_url="/nowhere"))
    first = queue_evaluation(engine, "orders", "2026-W48", "weekly")
    assert queue_evaluation(engine, "orders", "2026-W48", "weekly") == first
    assert queue_evaluation(engine, "orders", "2026-W48", "manual") != first
    with pytest.raises(ProductNotFound):
        queue_evaluation(engine, "nosuch", "2026-W48", "weekly")
    with pytest.raises(InputError, match="ISO week"):
        queue_evaluation(engine, "orders", "2026-48", "weekly")


def test_a_worker_sees_advisories_added_to_its_directory(tmp_path: Path) -> None:
    """The wired advisory source re-reads its directory, so a new advisory reaches no-op checks."""
    import shutil

    from specfleet.core.health.advisories import OsvDirectory
    from specfleet.worker.pipeline.wiring import RefreshingAdvisories

    directory = tmp_path / "advisories"
    (directory / "vulns").mkdir(parents=True)
    source = RefreshingAdvisories(lambda: OsvDirectory(directory), ttl_seconds=0)
    pin = ("pyarrow", "14.0.0")
    assert list(source.advisories_for([pin])[pin]) == []  # type: ignore[list-item]
    shutil.copytree(EXAMPLES / "advisories" / "vulns" / "pyarrow", directory / "vulns" / "pyarrow")
    found = source.advisories_for([pin])[pin]  # type: ignore[index]
    assert "PYSEC-2023-238" in [advisory.id for advisory in found]


def test_editing_a_prompt_template_changes_the_planner_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fingerprint's planner part hashes the prompt files themselves: an edited prompt
    re-evaluates the fleet without a hand-kept version string."""
    from specfleet.worker.pipeline import llm_plan

    package = tmp_path / "fake_prompts"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "instructions.md").write_text("Propose the best implementation.\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(llm_plan, "PROMPT_SOURCES", ("fake_prompts",))
    llm_plan.prompt_digest.cache_clear()
    before = llm_plan.prompt_digest()
    assert before == llm_plan.prompt_digest()
    (package / "instructions.md").write_text("Propose the smallest implementation.\n")
    llm_plan.prompt_digest.cache_clear()
    assert llm_plan.prompt_digest() != before
    llm_plan.prompt_digest.cache_clear()
