"""The plan the model answers with: edits, a rationale per change, and one spec amendment.

The same shape serves three readers: the LLM (as the JSON schema of its structured output),
the guard rails (which judge every edit before a byte is written) and people auditing a plan
file with ``specfleet agent check-edits``. Everything in a plan is untrusted data.

Edit kinds:

- ``replace``: a SEARCH/REPLACE block on an existing file (``search`` must match once);
- ``write``: the whole content of a small file (new or existing);
- ``delete``: remove a file (the guard rails refuse the spec, tests named by requirements,
  CI configuration and protected files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from specfleet.core.errors import InputError

EditKind = Literal["replace", "write", "delete"]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Edit(PlanModel):
    """One change to one file."""

    kind: EditKind
    path: str = Field(description="Path relative to the repository root, with / separators.")
    search: str | None = Field(default=None, description="replace: the exact text to find.")
    replace: str | None = Field(default=None, description="replace: the text that replaces it.")
    content: str | None = Field(default=None, description="write: the whole new file content.")


class Rationale(PlanModel):
    """Why one file changes, citing the spec requirements and policy rules it serves."""

    path: str
    why: str = Field(min_length=1)
    cites: list[str] = Field(
        default_factory=list, description="Spec requirement ids (R1) or policy rule ids."
    )


class AmendmentDraft(PlanModel):
    """The amendment appended to the spec: what was asked, what changed, why."""

    requirement: str = Field(min_length=1)
    change: str = Field(min_length=1)
    why: str = Field(min_length=1)


class Plan(PlanModel):
    """The model's answer for one product."""

    summary: str = Field(default="", description="One paragraph for the merge request.")
    no_change: bool = Field(
        default=False, description="True when the current implementation is already the best."
    )
    no_change_reason: str | None = None
    rationale: list[Rationale] = Field(default_factory=list)
    edits: list[Edit] = Field(default_factory=list)
    amendment: AmendmentDraft | None = None


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


# Written out by hand rather than generated: OpenAI's strict structured output needs every
# property listed as required and additionalProperties false at every level.
PLAN_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "no_change", "no_change_reason", "rationale", "edits", "amendment"],
    "properties": {
        "summary": {"type": "string"},
        "no_change": {"type": "boolean"},
        "no_change_reason": _nullable("string"),
        "rationale": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "why", "cites"],
                "properties": {
                    "path": {"type": "string"},
                    "why": {"type": "string"},
                    "cites": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind", "path", "search", "replace", "content"],
                "properties": {
                    "kind": {"type": "string", "enum": ["replace", "write", "delete"]},
                    "path": {"type": "string"},
                    "search": _nullable("string"),
                    "replace": _nullable("string"),
                    "content": _nullable("string"),
                },
            },
        },
        "amendment": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["requirement", "change", "why"],
                    "properties": {
                        "requirement": {"type": "string"},
                        "change": {"type": "string"},
                        "why": {"type": "string"},
                    },
                },
            ]
        },
    },
}


class PlanInvalid(InputError):
    """A plan document is not JSON or does not follow the plan format (names the field)."""


def parse_plan(text: str, source: str = "the answer") -> Plan:
    """Parse a plan from JSON text; tolerate a Markdown code fence around it (plain-JSON mode)."""
    body = unfence(text.strip())
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise PlanInvalid(
            f"{source}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(data, dict):
        raise PlanInvalid(f"{source}: a plan is a JSON object, not {type(data).__name__}")
    try:
        return Plan.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}"
            for item in error.errors()[:5]
        )
        raise PlanInvalid(f"{source}: not a valid plan: {problems}") from None


def read_plan_file(path: Path) -> Plan:
    """Read a plan file; unreadable files are InputError, bad content PlanInvalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot be read ({error})") from None
    return parse_plan(text, str(path))


def unfence(text: str) -> str:
    if text.startswith("```"):
        first_newline = text.find("\n")
        closing = text.rfind("```")
        if first_newline != -1 and closing > first_newline:
            return text[first_newline + 1 : closing].strip()
    return text
