"""Prompt economy: a long stable prefix, and a product part that says what matters once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from specfleet.agent.context import ContextInputs, build_prompt
from specfleet.agent.prompts.product import grouped_tests
from specfleet.core.health.advisories.osv_directory import OsvDirectory
from specfleet.core.health.pins import read_pins
from specfleet.core.health.report import HealthReport, assess
from specfleet.core.spec import load_spec
from specfleet.policies.findings import Finding
from specfleet.policies.packs import load_pack
from tests.conftest import EXAMPLES, REPO_ROOT

PACK = load_pack(REPO_ROOT / "policies" / "pack" / "v2")
ADVISORIES = REPO_ROOT / "tests" / "fixtures" / "advisories"


def health(name: str) -> HealthReport:
    """The example's real pins against the offline advisory fixtures (no index facts)."""
    repo = EXAMPLES / name
    spec = load_spec(repo / "dataproduct.yaml")
    pinset = read_pins(repo, spec.implementation.dependencies)
    source = OsvDirectory(ADVISORIES)
    exact = [(pin.name, pin.version) for pin in pinset.pins if pin.version]
    return assess(
        spec.id,
        spec.implementation.runtime,
        pinset.pins,
        pinset.problems,
        {},
        source.advisories_for(exact),
        source.name,
        dt.date(2026, 12, 1),
        pinset.files,
    )


def prompt_for(name: str, findings: tuple[Finding, ...] = (), **overrides: object) -> str:
    repo: Path = EXAMPLES / name
    inputs = ContextInputs(
        spec=load_spec(repo / "dataproduct.yaml"),
        repo=repo,
        rules=PACK.rules,
        policy_version=2,
        semgrep_files=PACK.semgrep_files,
        health=health(name),
        findings=findings,
        **overrides,  # type: ignore[arg-type]
    )
    return build_prompt(inputs).messages[1]["content"]


ORDERS_FINDINGS = (
    Finding(
        "ORG-SEC-001",
        "dependency",
        "high",
        "pyarrow 14.0.0 has PYSEC-2023-238 (unknown severity; fixed in 14.0.1)",
        file="requirements.txt",
        line=9,
        package="pyarrow",
        advisory="PYSEC-2023-238",
    ),
    Finding(
        "ORG-PY-004",
        "dependency",
        "medium",
        "pandas 1.5.3 does not satisfy pandas>=2.2",
        file="requirements.txt",
        line=5,
        package="pandas",
    ),
    Finding(
        "ORG-PY-010",
        "semgrep",
        "medium",
        "This makes a naive timestamp (no time zone), which readers take as their own local "
        "time. Timestamps must be timezone-aware UTC: add `from datetime import timezone` and "
        "use `datetime.now(timezone.utc)`.",
        file="pipeline/build.py",
        line=49,
    ),
)


def test_only_pins_that_need_attention_are_listed_in_full() -> None:
    """Vulnerable and policy-affected pins get a line each; the rest share one compact line."""
    user = prompt_for("orders", ORDERS_FINDINGS)
    assert "- pandas==1.5.3 (requirements.txt:5); failing ORG-PY-004" in user
    assert (
        "- pyarrow==14.0.0 (requirements.txt:9); failing ORG-SEC-001; advisory PYSEC-2023-238 "
        "(severity unknown; fixed in 14.0.1)" in user
    )
    assert "- requests==2.28.2 (requirements.txt:12); advisory PYSEC-2023-74" in user
    assert "other pins (nothing to report): numpy==1.24.4, pytest==7.4.4" in user
    # a note true of every pin is said once, not once per pin
    assert user.count("no index facts") == 1


def test_findings_say_nothing_the_prompt_already_says() -> None:
    """An advisory finding points at the health line; a semgrep finding keeps its concrete fix
    but not the sentence its rule summary (in the stable part) already carries."""
    user = prompt_for("orders", ORDERS_FINDINGS)
    assert (
        "- ORG-SEC-001 [high, fail] requirements.txt:9: pyarrow: advisory PYSEC-2023-238 "
        "(see the health report)" in user
    )
    assert "ORG-PY-004 [medium, fail] requirements.txt:5: pandas 1.5.3 does not satisfy" in user
    assert (
        "ORG-PY-010 [medium, fail] pipeline/build.py:49: Timestamps must be timezone-aware UTC: "
        "add `from datetime import timezone` and use `datetime.now(timezone.utc)`." in user
    )
    assert "which readers take as their own local time" not in user


def test_the_spec_view_is_compact_and_complete() -> None:
    """No owners' addresses and no folded lines; every requirement, test, why and amendment."""
    spec = load_spec(EXAMPLES / "orders" / "dataproduct.yaml")
    user = prompt_for("orders")
    assert not any(owner in user for owner in spec.owners)
    for requirement in spec.requirements:
        assert f"- id: {requirement.id}\n  text: {' '.join(requirement.text.split())}" in user
        assert all(test.split("::")[1] in user for test in requirement.tests)
    for output in spec.outputs:
        assert all(" ".join((column.why or "").split()) in user for column in output.columns)
    assert all(f"- id: {amendment.id}\n" in user for amendment in spec.amendments)
    assert "tests: {tests/test_orders.py: [test_unpaid_order]}" in user
    assert "expect: {exit_code: 3, stderr_contains: raw_orders is empty, no_outputs: true}" in user


def test_tests_are_grouped_by_file_in_order() -> None:
    assert grouped_tests(["t/a.py::x", "t/b.py::y", "t/a.py::K::z"]) == {
        "t/a.py": ["x", "K::z"],
        "t/b.py": ["y"],
    }
    assert grouped_tests(["t/a.py::x", "a node id without a file"]) == [
        "t/a.py::x",
        "a node id without a file",
    ]


def test_the_stable_part_is_shared_and_carries_the_references() -> None:
    """One system message for every example: every rule in id order, the rule and spec field
    references, the guard rails, the verification report and a worked example."""
    prompts = {
        name: build_prompt(
            ContextInputs(
                spec=load_spec(EXAMPLES / name / "dataproduct.yaml"),
                repo=EXAMPLES / name,
                rules=PACK.rules,
                policy_version=2,
                semgrep_files=PACK.semgrep_files,
                health=health(name),
                new_rule_ids=frozenset({"ORG-PY-004"}) if name == "orders" else frozenset(),
            )
        )
        for name in ("orders", "customer_revenue", "store_footfall")
    }
    systems = {prompt.messages[0]["content"] for prompt in prompts.values()}
    assert len(systems) == 1
    [system] = systems
    positions = [system.index(f"## {rule.id}: ") for rule in sorted(PACK.rules, key=lambda r: r.id)]
    assert positions == sorted(positions)
    for heading in (
        "# Reading the product section",
        "# Complying with each kind of rule",
        "# The guard rails, in the order they judge an edit",
        "# How a candidate is verified, and the report you get back",
        "# A worked example",
        "# Policy rule fields",
        "- no_outputs (boolean; default true):",
        "- format (csv | parquet | json; required):",
    ):
        assert heading in system
    # the product part, not the stable part, says which rules are new
    assert (
        "NEW since its last merged proposal: ORG-PY-004" in prompts["orders"].messages[1]["content"]
    )
    assert "ORG-PY-004" in system and "NEW" not in system.split("# Organisation policies")[1]


def test_the_product_header_names_the_rules_that_apply_in_the_shorter_way() -> None:
    """Every rule, every rule but the out-of-scope ones, or the list; new rules by id."""
    everything = frozenset(rule.id for rule in PACK.rules)
    all_user = prompt_for("orders", applicable_rule_ids=everything)
    assert "Rules that apply to this product: every rule of the policy set.\n" in all_user
    most = prompt_for(
        "store_footfall",
        applicable_rule_ids=everything - {"ORG-PY-004", "ORG-GUIDE-001"},
        new_rule_ids=frozenset({"ORG-SQL-001", "ORG-PY-004"}),
    )
    assert (
        "Rules that apply to this product: every rule of the policy set except ORG-GUIDE-001, "
        "ORG-PY-004 (not applicable).\nNEW since its last merged proposal: ORG-SQL-001.\n"
    ) in most
    few = prompt_for("store_footfall", applicable_rule_ids=frozenset({"ORG-SEC-001"}))
    assert "Rules that apply to this product: ORG-SEC-001.\n" in few
