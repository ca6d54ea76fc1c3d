"""The CLI and the web perform their use cases through services/, never around it.

Publishing a policy set, queueing policy or manual evaluations, recording amendments, writing
the registry and approving/merging/closing on a forge each happen in one place; an adapter in
ui/ calling the underlying function directly would fork the behaviour (pause handling, audit,
authorisation hook) again.
"""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"

# (module, name) pairs only services/ may import
UNDERLYING = {
    ("specfleet.policies.store", "publish"),
    ("specfleet.scheduler.fanout", "queue_policy_evaluations"),
    ("specfleet.worker.pipeline", "queue_evaluation"),
    ("specfleet.worker.pipeline.run", "queue_evaluation"),
    ("specfleet.worker.pipeline.amend", "request_amendment"),
    ("specfleet.core.registry", "Registry"),
    ("specfleet.core.registry.store", "Registry"),
    ("specfleet.core.db.ledger", "queue_once"),
    ("specfleet.worker.automerge", "open_revert"),
}
FORGE_ACTIONS = {"approve", "merge", "close"}


def bypasses(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module imports an underlying use-case function or acts on a forge itself."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in UNDERLYING:
                    found.append((node.lineno, f"imports {node.module}.{alias.name}"))
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"publish", "queue_once"}
            and isinstance(node.value, ast.Name)
            and node.value.id in {"store", "ledger"}
        ):
            found.append((node.lineno, f"calls {node.value.id}.{node.attr}"))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORGE_ACTIONS
            and "forge" in ast.unparse(node.func.value).lower()
        ):
            found.append((node.lineno, f"calls {ast.unparse(node.func)}"))
    return found


def test_the_guard_recognises_a_bypass() -> None:
    sample = (
        "from specfleet.policies.store import publish\n"
        "from specfleet.core.registry import Registry, get_product\n"
        "context.forge.approve(1, 'me')\n"
        "_forge(wired).merge(1, 'me')\n"
        "repo.close()\n"
    )
    assert [line for line, _ in bypasses(ast.parse(sample))] == [1, 2, 3, 4]


def test_ui_calls_services_for_every_shared_use_case() -> None:
    offenders = [
        f"{path.relative_to(UI.parent)}:{line}: {what}"
        for path in sorted(UI.rglob("*.py"))
        for line, what in bypasses(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == [], "use services/ instead:\n" + "\n".join(offenders)
