"""``specfleet spec export --odcs``: a spec as an Open Data Contract Standard (v3) document.

The spec's outputs become ODCS schema objects, columns properties (logical type, the
spec's type as physical type, required, primary key position, description, PII as
classification), owners the team. What ODCS has no place for (failure modes, amendments)
is left out; ``spec init --from-odcs`` reads the result back.
"""

from __future__ import annotations

from typing import Any

from specfleet.core.spec.model import Column, Output, Spec

_LOGICAL = {
    "string": "string",
    "integer": "integer",
    "bigint": "integer",
    "double": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_tz": "timestamp",
    "json": "object",
}


def _property(column: Column, key: list[str]) -> dict[str, Any]:
    prop: dict[str, Any] = {
        "name": column.name,
        "logicalType": _LOGICAL.get(column.type, "number"),
        "physicalType": column.type,
        "required": column.required,
    }
    if column.name in key:
        prop["primaryKey"] = True
        prop["primaryKeyPosition"] = key.index(column.name) + 1
    if column.description:
        prop["description"] = column.description
    if column.pii and column.pii != "none":
        prop["classification"] = f"pii-{column.pii}"
    return prop


def _schema_object(output: Output) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": output.name,
        "physicalName": output.table or output.path,
        "logicalType": "object",
        "properties": [_property(column, output.primary_key) for column in output.columns],
    }
    if output.description:
        item["description"] = output.description
    return item


def spec_to_odcs(spec: Spec) -> dict[str, Any]:
    return {
        "apiVersion": "v3.0.0",
        "kind": "DataContract",
        "id": spec.id,
        "name": spec.name,
        "version": f"1.0.{len(spec.amendments)}",
        "status": "active",
        "description": {"purpose": spec.purpose.strip()},
        "tags": list(spec.tags),
        "team": [{"username": owner, "role": "owner"} for owner in spec.owners],
        "schema": [_schema_object(output) for output in spec.outputs],
    }
