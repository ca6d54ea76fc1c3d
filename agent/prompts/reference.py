"""The spec format reference of the planner's prompt: the same text for every product.

Generated from the spec's JSON schema, so it never drifts from what the loader accepts: per
section its purpose, and per field its type (a section, a list of them, the allowed values),
its default and what it means. With this the product part can show the spec compactly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from specfleet.agent.plan import PLAN_JSON_SCHEMA
from specfleet.core.spec.schema import spec_json_schema

REF_PREFIX = "#/$defs/"


@lru_cache(maxsize=1)
def spec_reference() -> str:
    """What each spec field means, and the plan's JSON schema."""
    schema = spec_json_schema()
    lines = ["# Spec format reference (dataproduct.yaml, spec_version 1)", ""]
    sections = [("Spec", schema), *sorted(schema.get("$defs", {}).items())]
    for name, definition in sections:
        purpose = " ".join(str(definition.get("description", "")).split())
        lines.append(f"{name}: {purpose}" if purpose and name != "Spec" else f"{name}:")
        required = set(definition.get("required", []))
        for field_name, prop in definition.get("properties", {}).items():
            lines.append(field_line(field_name, prop, field_name in required))
        lines.append("")
    lines.append("# The plan's JSON schema")
    lines.append("")
    lines.append(json.dumps(PLAN_JSON_SCHEMA, sort_keys=True))
    return "\n".join(lines) + "\n"


def field_line(name: str, prop: dict[str, Any], required: bool) -> str:
    """``- name (type; default d): description`` for one schema property (pure)."""
    facts = [_type_of(prop)]
    if required:
        facts.append("required")
    elif prop.get("default") not in (None, [], {}):
        facts.append(f"default {json.dumps(prop['default'])}")
    description = " ".join(str(prop.get("description", "")).split())
    head = f"- {name} ({'; '.join(fact for fact in facts if fact)})"
    return f"{head}: {description}" if description else head


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).removeprefix(REF_PREFIX)
    if "enum" in prop:
        return " | ".join(str(value) for value in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    options = [option for option in prop.get("anyOf", []) if option.get("type") != "null"]
    if options:
        return " or ".join(_type_of(option) for option in options)
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    return str(prop.get("type", ""))
