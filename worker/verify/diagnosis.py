"""Why a side failed, in one line a product owner can act on, and what they can do.

A dbt build prints its failures on standard output ("Database Error in model
customer_orders (models/marts/customer_orders.sql)", "Compilation Error ... Model
'model.shop.stg_orders' ... depends on a node named 'raw_orders' which was not found"), not
on standard error, so both streams are read. Pure functions over a finished run.
"""

from __future__ import annotations

import re

from specfleet.worker.verify.model import RunResult

_DBT_NODE_ERROR = re.compile(
    r"(?:Failure|Error|Compilation Error|Database Error|Runtime Error) in "
    r"(model|seed|test|snapshot|source) ([A-Za-z0-9_.]+)(?: \(([^)]+)\))?"
)
_DBT_COMPILATION_NODE = re.compile(
    r"(Model|Seed|Test|Snapshot) '(?:\w+)\.\w+\.([A-Za-z0-9_]+)' \(([^)]+)\)"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_dbt_nodes(output: str) -> list[str]:
    """The dbt nodes a run names as failing: ``model customer_orders (models/x.sql)``."""
    text = _ANSI.sub("", output)
    found: list[str] = []
    for kind, name, path in _DBT_NODE_ERROR.findall(text):
        found.append(f"{kind} {name}" + (f" ({path})" if path else ""))
    for kind, name, path in _DBT_COMPILATION_NODE.findall(text):
        found.append(f"{kind.lower()} {name} ({path})")
    return list(dict.fromkeys(found))


def broken_build_reason(run: RunResult) -> str | None:
    """One line saying why a build that ended by itself failed; None when it built or was
    killed (a kill may be the machine's load, not the product's code)."""
    if run.ok or run.exit_code is None or run.timed_out:
        return None
    nodes = failing_dbt_nodes(f"{run.stdout}\n{run.stderr}")
    if nodes:
        shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        how = f"exit {run.exit_code}"
        return f"the current implementation does not build ({how}): dbt failed in {shown}"
    tail = [
        line
        for line in _ANSI.sub("", run.stderr or run.stdout or "").strip().splitlines()
        if line.strip()
    ][-2:]
    detail = f": {' / '.join(tail)}" if tail else ""
    return f"the current implementation does not build (exit {run.exit_code}){detail}"


OWNER_ACTION_BROKEN_BASELINE = (
    "fix the build on the default branch (run the spec's build command in a fresh checkout), "
    "then evaluate again with `specfleet evaluate PRODUCT --now`"
)
OWNER_ACTION_NOT_GREEN = (
    "read the verification report below; fix what it names in the product or amend the spec "
    "(`specfleet amend`), or apply the change by hand"
)
