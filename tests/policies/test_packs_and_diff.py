"""Policy packs: loading with located problems, content hashing, and diffs between versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specfleet.core.errors import PolicyPackInvalid
from specfleet.policies.diff import ProductFacts, diff_rules, newly_affected, newly_covered
from specfleet.policies.model import Rule
from specfleet.policies.packs import load_pack

PACK = Path(__file__).resolve().parents[2] / "policies" / "pack"


def rule(**overrides: object) -> Rule:
    base: dict[str, object] = {
        "id": "ORG-T-001",
        "title": "A rule",
        "kind": "guideline",
        "severity": "low",
        "effective": "2026-01-01",
        "why": "Because.",
        "owner": "arch@example.com",
        "guideline": "Do the right thing.",
    }
    return Rule.model_validate({**base, **overrides})


def write_rule(pack: Path, name: str, text: str) -> Path:
    path = pack / "rules" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_pack_loads_with_every_kind() -> None:
    """The bundled pack has about eight rules over all four kinds, each with a why."""
    pack = load_pack(PACK / "v1")
    kinds = {item.kind for item in pack.rules}
    assert kinds == {"dependency", "semgrep", "spec", "guideline"}
    assert 8 <= len(pack.rules) <= 12
    assert all(item.why.strip() for item in pack.rules)
    assert set(pack.semgrep_files) == {
        item.semgrep.file for item in pack.rules if item.semgrep is not None
    }


def test_second_version_adds_exactly_one_rule() -> None:
    """v2 of the default pack is v1 plus ORG-PY-004 (pandas >= 2.2)."""
    changes = diff_rules(load_pack(PACK / "v1").rules, load_pack(PACK / "v2").rules)
    assert [item.id for item in changes.added] == ["ORG-PY-004"]
    assert changes.removed == () and changes.changed == ()


def test_content_hash_ignores_layout_and_comments(tmp_path: Path) -> None:
    """Reformatting a rule file or moving rules between files is not a new policy."""
    first = Path(shutil.copytree(PACK / "v1", tmp_path / "a"))
    second = Path(shutil.copytree(PACK / "v1", tmp_path / "b"))
    path = second / "rules" / "ORG-SPEC-002.yaml"
    path.write_text("# a comment\n\n" + path.read_text())
    assert load_pack(first).content_hash() == load_pack(second).content_hash()
    path.write_text(path.read_text().replace("severity: low", "severity: medium"))
    assert load_pack(first).content_hash() != load_pack(second).content_hash()


def test_problems_are_located_and_reported_together(tmp_path: Path) -> None:
    """Unknown kinds, misspelt keys, a missing why, duplicate ids: each with file and line."""
    pack = tmp_path / "pack"
    write_rule(
        pack,
        "a.yaml",
        "id: ORG-A-001\ntitle: A\nkind: style\nseverity: low\n"
        "effective: 2026-01-01\nwhy: w\nowner: o\n",
    )
    write_rule(
        pack,
        "b.yaml",
        "id: ORG-B-001\ntitle: B\nkind: guideline\nseverity: low\n"
        "effective: 2026-01-01\nowner: o\nguidline: text\n",
    )
    write_rule(
        pack,
        "c.yaml",
        "rules:\n  - id: ORG-C-001\n    title: C\n    kind: guideline\n"
        "    severity: low\n    effective: 2026-01-01\n    why: w\n    owner: o\n"
        "    guideline: g\n  - id: ORG-C-001\n    title: again\n    kind: guideline\n"
        "    severity: low\n    effective: 2026-01-01\n    why: w\n    owner: o\n"
        "    guideline: g\n",
    )
    with pytest.raises(PolicyPackInvalid) as caught:
        load_pack(pack)
    messages = [problem.render() for problem in caught.value.problems]
    assert any("a.yaml:3:" in m and "kind" in m and "'style'" in m for m in messages), messages
    assert any("b.yaml:7:" in m and "did you mean 'guideline'?" in m for m in messages), messages
    assert any("b.yaml" in m and "missing required key 'why'" in m for m in messages), messages
    assert any(
        "c.yaml:10" in m and "duplicate rule id 'ORG-C-001' (first at" in m for m in messages
    )


def test_a_semgrep_rule_needs_its_file(tmp_path: Path) -> None:
    """A semgrep rule naming a missing file, or one outside the pack, is refused."""
    pack = tmp_path / "pack"
    base = "title: S\nkind: semgrep\nseverity: low\neffective: 2026-01-01\nwhy: w\nowner: o\n"
    write_rule(pack, "s.yaml", "id: ORG-S-001\n" + base + "semgrep: {file: semgrep/none.yaml}\n")
    write_rule(pack, "t.yaml", "id: ORG-S-002\n" + base + "semgrep: {file: ../../etc/x.yaml}\n")
    with pytest.raises(PolicyPackInvalid) as caught:
        load_pack(pack)
    text = "\n".join(problem.render() for problem in caught.value.problems)
    assert "does not exist" in text and "must be inside the pack" in text


def test_kind_and_section_must_agree() -> None:
    """A dependency rule without a dependency section (or with a foreign one) is refused."""
    with pytest.raises(ValueError, match="needs a 'dependency' section"):
        rule(kind="dependency")
    with pytest.raises(ValueError, match="cannot have a dependency section"):
        rule(dependency={"banned": ["pyyaml"]})


def test_diff_names_changed_fields_with_old_and_new_values() -> None:
    """A changed rule lists each changed field with its old and new value."""
    old = [rule(severity="low"), rule(id="ORG-T-002")]
    new = [rule(severity="high", scope={"tags": ["finance"]}), rule(id="ORG-T-003")]
    changes = diff_rules(old, new)
    assert [item.id for item in changes.added] == ["ORG-T-003"]
    assert [item.id for item in changes.removed] == ["ORG-T-002"]
    (change,) = changes.changed
    fields = {field.path: (field.old, field.new) for field in change.fields}
    assert fields["severity"] == ("low", "high")
    assert fields["scope.tags"] == ([], ["finance"])


def test_widened_scope_counts_as_added_for_newly_covered_products() -> None:
    """Widening a rule from one tag to all products newly covers the others."""
    products = [ProductFacts("a", ("finance",), "python3.11"), ProductFacts("b", ("retail",), None)]
    old = rule(scope={"tags": ["finance"]})
    new = rule(scope={})
    changes = diff_rules([old], [new])
    (change,) = changes.changed
    assert newly_covered(change, products) == ["b"]
    assert newly_affected(changes, products) == {"ORG-T-001": ["a", "b"]}
    added = diff_rules([], [rule(scope={"tags": ["retail"]})])
    assert newly_affected(added, products) == {"ORG-T-001": ["b"]}
    assert newly_affected(diff_rules([old], []), products) == {}
