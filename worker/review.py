"""What an owner needs to decide on a merge request at a glance, read from its evidence (pure).

The merge request's description is the evidence (``worker/pipeline/description.py`` writes it
from the verdict, ``worker/report.py`` renders the verification): this module reads it back
into a few facts — the verdict, the contract and data results, the new rules it answers, whether
an LLM wrote any of it — for the console's "waiting for me" page, the merge-request list and
the automerge decision. A description it cannot read gives ``unknown``, never green.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["verified green", "not verified", "onboarding", "unknown"]
PASSED = "**Verification: passed.**"
FAILED = "**Verification: failed.**"
CONTRACT_SAME = "matches the spec and the baseline"
DETERMINISTIC = "none — deterministic remediators"
RULES_HEAD = "## Policy rules new since the last merged proposal"
DATA_HEAD = "### Data on the fixtures"
CONTRACT_HEAD = "### Output contracts"
RULE_ROW = re.compile(r"^\|\s*([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+)\s*\|\s*(\w+)\s*\|")
VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True)
class ReviewFacts:
    verdict: Verdict
    contract: str  # identical, additive, changed or unknown
    data: str  # identical, changed, not compared or unknown
    new_rules: tuple[tuple[str, str], ...]  # (rule id, severity) the change answers
    deterministic: bool  # no LLM call made any of it
    dependency_changes: tuple[tuple[str, str, str, str], ...]  # package, from, to, why
    dependency_files: tuple[str, ...] = ()  # the pin files those changes edit

    @property
    def green(self) -> bool:
        return self.verdict == "verified green"

    @property
    def identical_outputs(self) -> bool:
        return self.contract == "identical" and self.data == "identical"


def review_facts(
    description: str, changes: Mapping[str, Any] | None = None, labels: Sequence[str] = ()
) -> ReviewFacts:
    """Facts from a merge request's description and its proposal's recorded changes.

    An onboarding merge request (label ``onboarding``) carries a drafted spec, not a verified
    change: it is neither green nor failed, and no bulk merge takes it.
    """
    if "onboarding" in labels:
        verdict: Verdict = "onboarding"
    elif PASSED in description:
        verdict = "verified green"
    elif FAILED in description:
        verdict = "not verified"
    else:
        verdict = "unknown"
    recorded = [d for d in (changes or {}).get("dependencies") or () if isinstance(d, Mapping)]
    dependencies = tuple(
        (
            str(d.get("package", "")),
            str(d.get("from", "")),
            str(d.get("to", "")),
            str(d.get("why", "")),
        )
        for d in recorded
    )
    return ReviewFacts(
        verdict=verdict,
        contract=_contract(description),
        data=_data(description),
        new_rules=_new_rules(description),
        deterministic=DETERMINISTIC in description,
        dependency_changes=dependencies,
        dependency_files=tuple(sorted({str(d.get("file", "")) for d in recorded} - {""})),
    )


def _section(description: str, head: str) -> list[str]:
    lines = description.splitlines()
    try:
        start = lines.index(head)
    except ValueError:
        return []
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        body.append(line)
    return body


def _contract(description: str) -> str:
    body = _section(description, CONTRACT_HEAD)
    if not body:
        return "unknown"
    if any(CONTRACT_SAME in line for line in body):
        return "identical"
    levels = {row[0] for row in _table_rows(body)}
    if levels and levels <= {"info"}:
        return "additive"
    return "changed"


def _data(description: str) -> str:
    body = _section(description, DATA_HEAD)
    if not body:
        return "unknown"
    if any(line.startswith("Not compared") for line in body):
        return "not compared"
    rows = [row for row in _table_rows(body) if len(row) >= 6]
    if not rows:
        return "unknown"
    # columns: output, baseline rows, candidate rows, only in baseline, only in candidate,
    # changed rows (the examples table after it has 4 columns and is skipped above)
    same = all(row[3] == "0" and row[4] == "0" and row[5] == "0" for row in rows)
    return "identical" if same else "changed"


def _table_rows(lines: Sequence[str]) -> list[list[str]]:
    rows = []
    for line in lines:
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("level", "output", "row"):
            continue  # header rows
        rows.append(cells)
    return rows


def _new_rules(description: str) -> tuple[tuple[str, str], ...]:
    found = []
    for line in _section(description, RULES_HEAD):
        match = RULE_ROW.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return tuple(found)


def is_patch_bump(current: str, target: str) -> bool:
    """Same major and minor version, a higher patch (``1.2.3`` -> ``1.2.4``)."""
    a, b = VERSION.match(current.strip()), VERSION.match(target.strip())
    if a is None or b is None:
        return False
    if a.group(1) != b.group(1) or (a.group(2) or "0") != (b.group(2) or "0"):
        return False
    return int(b.group(3) or 0) > int(a.group(3) or 0)


def diff_size(diff: str) -> tuple[int, int, int]:
    """(files, lines added, lines removed) of a unified diff."""
    files = added = removed = 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return files, added, removed
