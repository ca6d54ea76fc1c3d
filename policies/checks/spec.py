"""``spec`` rules: completeness of the product's spec (pure over the spec and its positions)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from specfleet.core.spec.model import Spec
from specfleet.core.spec.problems import FieldPath
from specfleet.policies.findings import Finding
from specfleet.policies.model import Rule, SpecCheckName

# column names that carry personal data unless proven otherwise
PERSONAL = re.compile(
    r"(^|_)(e_?mail|name|first_?name|last_?name|full_?name|phone|mobile|address|street|"
    r"postcode|zip|birth|dob|ssn|passport|iban|ip_?address|customer_id|user_id)($|_)",
    re.IGNORECASE,
)


def check_spec_rule(
    rule: Rule, spec: Spec, spec_file: str, positions: Mapping[FieldPath, tuple[int, int]]
) -> list[Finding]:
    assert rule.spec is not None
    findings = []
    for check in rule.spec.checks:
        for path, message in _violations(check, spec):
            position = _nearest(positions, path)
            findings.append(
                Finding(
                    rule.id,
                    "spec",
                    rule.severity,
                    message,
                    file=spec_file,
                    line=position[0] if position else None,
                    fixable=False,  # what a column means is for its owner to write
                )
            )
    return findings


def _violations(check: SpecCheckName, spec: Spec) -> Iterator[tuple[FieldPath, str]]:
    for output_index, output in enumerate(spec.outputs):
        for column_index, column in enumerate(output.columns):
            path: FieldPath = ("outputs", output_index, "columns", column_index)
            where = f"{output.name}.{column.name}"
            if check == "column_description" and not (column.description or "").strip():
                yield path, f"column {where} has no description"
            if check == "column_why" and not (column.why or "").strip():
                yield path, f"column {where} does not say why it exists"
            if check == "pii_classified" and column.pii is None and PERSONAL.search(column.name):
                yield path, f"column {where} looks like personal data but has no pii class"
    if check == "requirement_tests":
        for index, requirement in enumerate(spec.requirements):
            if not requirement.tests:
                yield ("requirements", index), f"requirement {requirement.id} names no test"


def _nearest(
    positions: Mapping[FieldPath, tuple[int, int]], path: FieldPath
) -> tuple[int, int] | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in positions:
            return positions[path[:cut]]
    return None
