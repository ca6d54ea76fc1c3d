"""The spec loader: valid specs load; every bad input gets one located message, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from specfleet.core.errors import InputError, SpecInvalid
from specfleet.core.spec import check_spec_bytes, check_spec_file, load_spec
from specfleet.core.spec.loader import MAX_SPEC_BYTES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "specs"
VALID = (FIXTURES / "valid.yaml").read_text()


def problems_of(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    check = check_spec_bytes(data, "dataproduct.yaml")
    assert not check.valid, "expected the spec to be rejected"
    return [problem.render() for problem in check.problems]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def test_valid_spec_loads_with_every_section() -> None:
    """A complete spec loads into the model with its sections and normalised types."""
    spec = load_spec(FIXTURES / "valid.yaml")
    assert spec.id == "invoices"
    assert spec.output("invoices").primary_key == ["invoice_id"]
    amount = spec.output("invoices").columns[1]
    assert (amount.type, amount.tolerance) == ("decimal(10,2)", 0.005)
    assert spec.failure_modes[0].when.input_name == "raw_invoices"
    assert [amendment.id for amendment in spec.amendments] == ["A1", "A2"]


def test_malformed_yaml_names_line_and_column() -> None:
    """A YAML syntax error is reported at its line and column."""
    broken = VALID.replace("tags: [finance, python]", "tags: [finance, python")
    (message,) = problems_of(broken)
    assert message.startswith("dataproduct.yaml:")
    assert "invalid YAML" in message
    line = int(message.split(":")[1])
    assert line in (line_of(broken, "tags:"), line_of(broken, "tags:") + 1)


def test_wrong_type_names_field_and_line() -> None:
    """A value of the wrong type names the field path and the line it is on."""
    broken = VALID.replace("max_build_seconds: 60", "max_build_seconds: soon")
    (message,) = problems_of(broken)
    assert f"dataproduct.yaml:{line_of(broken, 'max_build_seconds')}:" in message
    assert "constraints.max_build_seconds" in message
    assert "'soon'" in message


def test_unknown_key_suggests_the_known_one() -> None:
    """A misspelt key is rejected with a did-you-mean naming the key it resembles."""
    broken = VALID.replace("    why: Finance reconciles", "    wyh: Finance reconciles")
    (message,) = problems_of(broken)
    assert f":{line_of(broken, 'wyh:')}:" in message
    assert "outputs[0].columns[0].wyh" in message
    assert "did you mean 'why'?" in message


def test_unknown_key_without_resemblance_lists_allowed_keys() -> None:
    """An unknown top-level key with no close match lists the keys allowed there."""
    (message,) = problems_of(VALID + "colour: blue\n")
    assert "unknown key 'colour'" in message
    assert "allowed here: spec_version, id, name" in message


def test_duplicate_column_names_point_at_the_second() -> None:
    """Two columns with one name are rejected at the second, naming the first."""
    broken = VALID.replace("- name: customer_email", "- name: amount")
    (message,) = problems_of(broken)
    assert f":{line_of(broken, '- name: amount', 2)}:" in message
    assert "duplicate name 'amount'" in message
    assert "outputs[0].columns[1].name" in message


def test_primary_key_naming_a_missing_column() -> None:
    """A primary key column that is not a column of the output is rejected at the key."""
    broken = VALID.replace("primary_key: [invoice_id]", "primary_key: [invoice_no]")
    (message,) = problems_of(broken)
    assert f":{line_of(broken, 'primary_key')}:" in message
    assert "primary key column 'invoice_no' is not a column of output 'invoices'" in message


def test_amendment_without_why() -> None:
    """An amendment must say why; a missing why names the amendment and its line."""
    broken = VALID.replace(
        "    why: Floating-point amounts made reconciliation differ by cents.\n", ""
    )
    (message,) = problems_of(broken)
    assert "amendments[0]: missing required key 'why'" in message
    assert f":{line_of(broken, '- id: A1')}:" in message


def test_amendment_with_empty_why() -> None:
    """An empty why is as bad as a missing one."""
    broken = VALID.replace(
        "why: Floating-point amounts made reconciliation differ by cents.", 'why: ""'
    )
    (message,) = problems_of(broken)
    assert "amendments[0].why" in message


def test_duplicate_yaml_keys_are_not_silently_merged() -> None:
    """YAML allows a repeated key (the last wins); a spec must not lose the first silently."""
    broken = VALID.replace("name: Invoices\n", "name: Invoices\nname: Bills\n")
    messages = problems_of(broken)
    assert any("duplicate key 'name' (first at line" in message for message in messages)


def test_every_problem_is_reported_at_once() -> None:
    """Several independent mistakes are all reported in one run."""
    broken = VALID.replace("runtime: python3.11", "runtime: ruby").replace(
        "type: bigint", "type: bigint2"
    )
    messages = problems_of(broken)
    assert len(messages) == 2
    assert any("implementation.runtime" in message for message in messages)
    assert any("unknown column type 'bigint2'" in message for message in messages)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "the file is binary"),
        (b"id: caf\xe9\n", "not UTF-8 text"),
        (b"- a\n- b\n", "expected a mapping of spec sections, found a list"),
    ],
)
def test_unusable_content_gets_one_clear_message(content: bytes, expected: str) -> None:
    """Empty, binary, non-UTF-8 and non-mapping files each get one clear message."""
    (message,) = problems_of(content)
    assert expected in message


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 50 MB file is refused by its size before it is read or parsed."""
    big = tmp_path / "dataproduct.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    check = check_spec_file(big)
    assert not check.valid
    (problem,) = check.problems
    assert "50.0 MB" in problem.message
    assert f"at most {MAX_SPEC_BYTES // 1024} KB" in problem.message


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    """A path that does not exist raises InputError naming it (the CLI's exit 2)."""
    with pytest.raises(InputError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_load_spec_raises_with_all_problems(tmp_path: Path) -> None:
    """load_spec raises SpecInvalid carrying the problems and the file name."""
    path = tmp_path / "dataproduct.yaml"
    path.write_text(VALID.replace("spec_version: 1", "spec_version: 2"))
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert caught.value.source == str(path)
    assert "spec_version" in caught.value.problems[0].render()
    assert caught.value.problems[0].line == line_of(VALID, "spec_version")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("fixture: fixtures/raw_invoices.csv", "fixture: ../secrets.csv", "no '..'"),
        ("path: invoices.parquet", "path: /etc/passwd", "not absolute"),
        ("type: decimal(10,2)", "type: decimal(40,2)", "precision from 1 to 38"),
        ("    tolerance: 0.005", "    tolerance: -1", "greater than or equal to 0"),
        (
            "when: {input_missing: raw_invoices}",
            "when: {input_missing: nope}",
            "names input 'nope'",
        ),
        (
            "when: {input_missing: raw_invoices}",
            "when: {input_missing: raw_invoices, input_empty: raw_invoices}",
            "exactly one",
        ),
        ("owners: [ana@example.com, raj@example.com]", "owners: []", "at least 1 item"),
        ("owners: [ana@example.com, raj@example.com]", "owners: [ana]", "owners[0]"),
        ("format: parquet", "format: duckdb", "needs 'table'"),
        ("id: invoices", "id: Invoices!", "id"),
    ],
)
def test_field_rules(old: str, new: str, expected: str) -> None:
    """Field-level and cross-field rules reject what later stages could not use."""
    assert old in VALID
    messages = problems_of(VALID.replace(old, new, 1))
    assert any(expected in message for message in messages), messages


def test_tolerance_on_a_text_column_is_rejected() -> None:
    """A tolerance only makes sense on a numeric column."""
    broken = VALID.replace(
        "        why: Dunning letters go to this address (amendment A2).\n",
        "        why: Dunning letters go to this address (amendment A2).\n        tolerance: 0.1\n",
    )
    messages = problems_of(broken)
    assert any("tolerance applies to numeric columns" in message for message in messages)
