"""Appending an amendment to a spec's text: the one function that edits a spec's amendments.

A text edit, not a YAML round trip: the owner's comments, order and folding stay as they were.
Used by the deterministic remediation (``worker/pipeline/apply.py``) and by the agent's guards
(``agent/guards.py``) alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import yaml

TOP_LEVEL_KEY = re.compile(r"^[^\s#]")
AMENDMENTS_KEY = re.compile(r"^amendments:[ \t]*(\[\s*\])?[ \t]*(#.*)?$", re.MULTILINE)


def append_amendment(text: str, item: Mapping[str, object]) -> tuple[str, str]:
    """``text`` with ``item`` appended to its ``amendments`` list; (new text, appended YAML).

    A text edit, not a YAML round trip: the owner's comments, order and folding stay as
    they were.
    """
    rendered = yaml.safe_dump([dict(item)], sort_keys=False, allow_unicode=True, width=96)
    match = AMENDMENTS_KEY.search(text)
    if match is not None and match.group(1):  # "amendments: []": the list starts here
        text = text[: match.start()] + "amendments:" + text[match.end() :]
        match = AMENDMENTS_KEY.search(text)
    lines = text.splitlines(keepends=True)
    if match is None:
        block = "".join("  " + line for line in rendered.splitlines(keepends=True))
        prefix = text if text.endswith("\n") or not text else text + "\n"
        return f"{prefix}\namendments:\n{block}", block
    start = text[: match.start()].count("\n")  # line index of "amendments:"
    end = start + 1
    while end < len(lines) and not TOP_LEVEL_KEY.match(lines[end]):
        end += 1
    last = end  # insert after the block's last non-blank line
    while last > start + 1 and not lines[last - 1].strip():
        last -= 1
    indent = "  "
    for line in lines[start + 1 : end]:
        found = re.match(r"^(\s*)- ", line)
        if found:
            indent = found.group(1)
            break
    block = "".join(indent + line for line in rendered.splitlines(keepends=True))
    before = "".join(lines[:last])
    if before and not before.endswith("\n"):
        before += "\n"
    return before + block + "".join(lines[last:]), block
