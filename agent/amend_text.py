"""Writing a checked amendment draft into the spec text: round-trip YAML, so the owner's
formatting and comments stay and the diff is small; the result must still validate.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from specfleet.agent.amend import AmendmentAsk, CheckedDraft, DraftInvalid
from specfleet.core.spec.loader import check_spec_bytes
from specfleet.core.yamldoc import alias_bomb


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def amend_spec_text(
    spec_text: str, checked: CheckedDraft, ask: AmendmentAsk, today: dt.date
) -> str:
    """The spec text with the checked draft applied; raises DraftInvalid if it stops validating."""
    bomb = alias_bomb(spec_text, "dataproduct.yaml")
    if bomb is not None:
        raise DraftInvalid(bomb.render())
    yaml = _yaml()
    document = yaml.load(spec_text)
    draft = checked.draft
    requirements = document.setdefault("requirements", CommentedSeq())
    for requirement in draft.requirements:
        entry = CommentedMap(
            [("id", requirement.id), ("text", requirement.text), ("tests", list(requirement.tests))]
        )
        index = next((i for i, r in enumerate(requirements) if r.get("id") == requirement.id), None)
        if index is None:
            requirements.append(entry)
        else:
            requirements[index] = entry
    for column in draft.columns:
        output = next(o for o in document["outputs"] if o.get("name") == column.output)
        entry = CommentedMap(
            [
                ("name", column.name),
                ("type", column.type),
                ("required", column.required),
                ("description", column.description),
                ("why", f"{column.why} (amendment {checked.amendment_id})"),
            ]
        )
        if column.tolerance is not None:
            entry["tolerance"] = column.tolerance
        index = next(
            (i for i, c in enumerate(output["columns"]) if c.get("name") == column.name), None
        )
        if index is None:
            output["columns"].append(entry)
        else:
            output["columns"][index] = entry
    for clause in checked.removed:
        _remove_clause(document, clause)
    amendments = document.setdefault("amendments", CommentedSeq())
    amendments.append(
        CommentedMap(
            [
                ("id", checked.amendment_id),
                ("date", today.isoformat()),
                ("requirement", " ".join(ask.requirement.split())),
                ("change", draft.amendment.change if draft.amendment else ""),
                ("why", draft.amendment.why if draft.amendment else (ask.why or "")),
                ("requirements", list(checked.requirement_ids)),
            ]
        )
    )
    stream = io.StringIO()
    yaml.dump(document, stream)
    text = stream.getvalue()
    result = check_spec_bytes(text.encode(), "dataproduct.yaml")
    if result.spec is None:
        first = result.problems[0].render() if result.problems else "invalid"
        raise DraftInvalid(f"the amended spec would not validate: {first}")
    return text


def _remove_clause(document: Any, clause: str) -> None:
    for section in ("requirements", "failure_modes"):
        items = document.get(section) or []
        for index, item in enumerate(items):
            if item.get("id") == clause:
                del items[index]
                return
    for output in document.get("outputs") or []:
        for index, column in enumerate(output.get("columns") or []):
            if column.get("name") == clause:
                del output["columns"][index]
                return
