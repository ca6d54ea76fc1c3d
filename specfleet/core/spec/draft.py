"""Drafting ``dataproduct.yaml`` for a repository that has none: from a dbt project or ODCS.

What can be read is read: from dbt, the project name, seeds (inputs), models with their
columns, ``data_type`` and tests (``unique`` + ``not_null`` -> primary key, ``not_null`` ->
required, ``accepted_values`` -> enum), the DuckDB path in ``profiles.yml`` and, when the
build has run, the column types of the tables in that file. From an ODCS data contract
(v3), its schema objects and properties. What cannot be inferred (owners, purpose, why each
column exists, failure modes) gets a placeholder that validates and an ``# OWNER:`` comment
saying what to fill in, so the draft passes ``spec validate`` and the owner sees every gap.

Pure functions over parsed documents; :func:`render_draft` writes the YAML text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from specfleet.core.spec.types import UnknownColumnType, canonical_column_type

PLACEHOLDER_OWNER = "owner@example.invalid"
OWNER_MARK = "# OWNER:"


@dataclass
class DraftColumn:
    name: str
    type: str | None  # logical type; None when nothing said
    required: bool = False
    description: str | None = None
    enum: list[str] | None = None
    pii_hint: bool = False


@dataclass
class DraftOutput:
    name: str
    format: str
    path: str
    table: str | None
    description: str | None
    primary_key: list[str] = field(default_factory=list)
    columns: list[DraftColumn] = field(default_factory=list)


@dataclass
class DraftInput:
    name: str
    format: str
    fixture: str


@dataclass
class Draft:
    id: str
    name: str
    purpose: str | None
    owners: list[str]
    runtime: str
    dependencies: str
    build: str
    test: str | None
    inputs: list[DraftInput]
    outputs: list[DraftOutput]
    source: str  # what the draft was made from, for the header comment


def product_id(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-") or "product"
    return slug[:63]


def _logical(declared: object) -> str | None:
    if not isinstance(declared, str) or not declared.strip():
        return None
    try:
        return canonical_column_type(declared)
    except UnknownColumnType:
        return None


def _test_names(column: Mapping[str, Any]) -> dict[str, Any]:
    """dbt column tests by name (``tests`` or ``data_tests``; strings or one-key mappings)."""
    found: dict[str, Any] = {}
    for entry in [*(column.get("tests") or []), *(column.get("data_tests") or [])]:
        if isinstance(entry, str):
            found[entry] = None
        elif isinstance(entry, Mapping) and len(entry) == 1:
            ((name, arguments),) = entry.items()
            found[str(name)] = arguments
    return found


def dbt_outputs(
    schema_documents: Sequence[Mapping[str, Any]],
    duckdb_path: str | None,
    built_types: Mapping[str, Mapping[str, str]] | None = None,
    materialized_tables: set[str] | None = None,
) -> list[DraftOutput]:
    """One output per documented dbt model (tables only when ``materialized_tables`` is given)."""
    outputs = []
    for document in schema_documents:
        for model in document.get("models") or []:
            if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
                continue
            name = model["name"]
            if materialized_tables is not None and name not in materialized_tables:
                continue
            types = (built_types or {}).get(name, {})
            columns, key = [], []
            for column in model.get("columns") or []:
                if not isinstance(column, Mapping) or not isinstance(column.get("name"), str):
                    continue
                tests = _test_names(column)
                accepted = tests.get("accepted_values")
                values = accepted.get("values") if isinstance(accepted, Mapping) else None
                columns.append(
                    DraftColumn(
                        name=column["name"],
                        type=_logical(column.get("data_type"))
                        or _logical(types.get(column["name"])),
                        required="not_null" in tests,
                        description=column.get("description") or None,
                        enum=[str(v) for v in values] if isinstance(values, list) else None,
                        pii_hint=bool(
                            re.search(r"e?mail|phone|name|address|birth", column["name"])
                        ),
                    )
                )
                if "unique" in tests and "not_null" in tests:
                    key.append(column["name"])
            if not columns:
                continue
            outputs.append(
                DraftOutput(
                    name=name,
                    format="duckdb" if duckdb_path else "parquet",
                    path=duckdb_path or f"{name}.parquet",
                    table=name if duckdb_path else None,
                    description=model.get("description") or None,
                    primary_key=key[:1],
                    columns=columns,
                )
            )
    return outputs


_ODCS_TYPES = {
    "string": "string",
    "integer": "bigint",
    "number": "double",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "object": "json",
    "array": "json",
}


def odcs_outputs(contract: Mapping[str, Any]) -> list[DraftOutput]:
    """Outputs from an ODCS v3 contract's ``schema`` objects (physicalType wins over logical)."""
    outputs = []
    for item in contract.get("schema") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        columns, key = [], []
        for prop in item.get("properties") or []:
            if not isinstance(prop, Mapping) or not isinstance(prop.get("name"), str):
                continue
            logical = _logical(prop.get("physicalType")) or _ODCS_TYPES.get(
                str(prop.get("logicalType", "")).lower()
            )
            columns.append(
                DraftColumn(
                    name=prop["name"],
                    type=logical,
                    required=bool(prop.get("required")),
                    description=prop.get("description") or None,
                )
            )
            if prop.get("primaryKey"):
                key.append((int(prop.get("primaryKeyPosition") or 0), prop["name"]))
        physical = str(item.get("physicalName") or item["name"])
        outputs.append(
            DraftOutput(
                name=item["name"],
                format="parquet",
                path=f"{physical}.parquet",
                table=None,
                description=item.get("description") or None,
                primary_key=[name for _, name in sorted(key)],
                columns=columns,
            )
        )
    return outputs


def odcs_owners(contract: Mapping[str, Any]) -> list[str]:
    team = contract.get("team")
    members = team.get("members") if isinstance(team, Mapping) else team
    emails = []
    for member in members or []:
        if isinstance(member, Mapping):
            for key in ("email", "username"):
                value = member.get(key)
                if isinstance(value, str) and re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
                    emails.append(value)
                    break
    return emails


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def render_draft(draft: Draft) -> str:
    """The draft as YAML text, each gap marked with an ``# OWNER:`` comment."""
    lines = [
        f"# Drafted by `specfleet spec init` from {draft.source}.",
        f"# Lines marked '{OWNER_MARK}' could not be inferred: fill them in, then run",
        "# `specfleet spec validate dataproduct.yaml`.",
        "spec_version: 1",
        f"id: {draft.id}",
        f"name: {_q(draft.name)}",
        "owners:",
    ]
    if draft.owners:
        lines += [f"  - {owner}" for owner in draft.owners]
    else:
        lines += [f"  - {PLACEHOLDER_OWNER}  {OWNER_MARK} who approves changes to this product"]
    if draft.purpose:
        lines.append(f"purpose: {_q(draft.purpose)}")
    else:
        lines.append(
            f'purpose: "To be written by the owner."  {OWNER_MARK} why it exists, who uses it'
        )
    lines += [
        "implementation:",
        f"  runtime: {draft.runtime}  {OWNER_MARK} the Python the product runs on",
        f"  dependencies: {draft.dependencies}",
        f"  build: {_q(draft.build)}",
    ]
    if draft.test:
        lines.append(f"  test: {_q(draft.test)}")
    if draft.inputs:
        lines.append("inputs:")
        for item in draft.inputs:
            lines += [
                f"  - name: {item.name}",
                f"    format: {item.format}",
                f"    fixture: {item.fixture}",
            ]
    lines.append("outputs:")
    for output in draft.outputs:
        lines += [
            f"  - name: {output.name}",
            f"    format: {output.format}",
            f"    path: {output.path}",
        ]
        if output.table:
            lines.append(f"    table: {output.table}")
        if output.description:
            lines.append(f"    description: {_q(output.description)}")
        if output.primary_key:
            lines.append(f"    primary_key: [{', '.join(output.primary_key)}]")
        else:
            lines.append(f"    primary_key: []  {OWNER_MARK} the columns identifying a row")
        lines.append("    columns:")
        for column in output.columns:
            lines += _column_lines(column)
    if draft.inputs:
        first = draft.inputs[0].name
        lines.append(f"# failure_modes:  {OWNER_MARK} how the build must fail ({first} missing?)")
    return "\n".join(lines) + "\n"


def _column_lines(column: DraftColumn) -> list[str]:
    lines = [f"      - name: {column.name}"]
    if column.type:
        lines.append(f"        type: {column.type}")
    else:
        lines.append(f"        type: string  {OWNER_MARK} type not declared anywhere")
    if column.required:
        lines.append("        required: true")
    if column.description:
        lines.append(f"        description: {_q(column.description)}")
    else:
        lines.append(f"        # description:  {OWNER_MARK} what a value means")
    lines.append(f"        # why:  {OWNER_MARK} the need this column serves")
    if column.enum:
        lines.append(f"        enum: [{', '.join(_q(v) for v in column.enum)}]")
    if column.pii_hint:
        lines.append(f"        # pii: direct  {OWNER_MARK} the name suggests personal data")
    return lines
