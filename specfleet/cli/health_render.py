"""How ``specfleet health`` and ``remediate`` print: what matters first, nothing lost.

The pin table lists vulnerable pins, then outdated ones (``--all``: every pin, in that order).
On a terminal it is a Rich table; piped (CI logs, ``| less``, a file) it is plain aligned text
at its natural width, so no column is squeezed away and no version is cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from specfleet.agent.remediators.dependencies import DependencyProposal
    from specfleet.core.health.report import HealthReport, PinHealth

HEADINGS = ("package", "pinned", "latest", "age (days)", "advisories", "fixed in", "where", "notes")


def ordered_pins(report: HealthReport, show_all: bool) -> list[PinHealth]:
    """Vulnerable first (most advisories first), then outdated, then the rest if asked (pure)."""

    def rank(item: PinHealth) -> tuple[int, int]:
        if item.vulnerable:
            return (0, -len(item.advisories))
        if item.yanked:
            return (1, 0)
        if item.outdated:
            return (2, 0)
        return (3, 0)

    ranked = sorted(report.pins, key=rank)  # stable: file order within a rank
    return ranked if show_all else [item for item in ranked if rank(item)[0] < 3]


def pin_row(item: PinHealth) -> tuple[str, ...]:
    """One table row as plain text (pure)."""
    notes = list(item.notes)
    if item.yanked:
        notes.insert(0, "YANKED")
    advisories = ", ".join(
        advisory.id + (f" ({advisory.severity})" if advisory.severity else "")
        for advisory in item.advisories
    )
    return (
        item.pin.name,
        item.current or (str(item.pin.specifier) or "*"),
        item.latest or "?",
        "" if item.age_days is None else str(item.age_days),
        advisories,
        item.fixed_in or "",
        f"{item.pin.file}:{item.pin.line}",
        "; ".join(notes),
    )


def plain_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, never cut (pure)."""
    widths = [len(heading) for heading in headings]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (headings, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def summary_line(report: HealthReport, shown: int) -> str:
    runtime = report.runtime
    eol = f", end of life {runtime.end_of_life}" if runtime.end_of_life else ""
    outdated = sum(1 for item in report.pins if item.outdated)
    hidden = len(report.pins) - shown
    more = f"; {hidden} other pins not shown (--all shows every pin)" if hidden else ""
    return (
        f"{report.product_id}: {len(report.pins)} pins, {len(report.vulnerable)} vulnerable, "
        f"{outdated} outdated; runtime {runtime.runtime} ({runtime.status}{eol}); "
        f"advisories from {report.advisory_source}{more}"
    )


def print_report(console: Console, report: HealthReport, show_all: bool) -> None:
    items = ordered_pins(report, show_all)
    rows = [pin_row(item) for item in items]
    console.print(escape(summary_line(report, len(items))), soft_wrap=True)
    problems = [(f"{p.file}:{p.line}", p.reason) for p in report.problems]
    if not console.is_terminal:
        if rows:
            console.print(escape(plain_table(HEADINGS, rows)), soft_wrap=True)
        if problems:
            console.print("\nLines not understood:", soft_wrap=True)
            console.print(escape(plain_table(("where", "reason"), problems)), soft_wrap=True)
        return
    table = Table(show_lines=False)
    for heading in HEADINGS[:6]:
        table.add_column(heading, no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("notes", overflow="fold")
    for item, row in zip(items, rows, strict=True):
        cells = [escape(cell) for cell in row]
        cells[4] = "\n".join(f"[red]{escape(a.id)}[/]" for a in item.advisories) or ""
        table.add_row(*cells)
    console.print(table)
    if problems:
        table = Table(title="Lines not understood", title_justify="left")
        table.add_column("where")
        table.add_column("reason", overflow="fold")
        for where, reason in problems:
            table.add_row(escape(where), escape(reason))
        console.print(table)


def print_proposal(console: Console, proposal: DependencyProposal) -> None:
    if proposal.empty and not proposal.blocked:
        console.print("Nothing to change: no pin needs an upgrade.")
        return
    wide = not console.is_terminal
    if proposal.upgrades:
        rows = [
            (
                upgrade.package,
                upgrade.current,
                upgrade.target + (" (major)" if upgrade.crosses_major else ""),
                "; ".join(reason.render() for reason in upgrade.reasons),
            )
            for upgrade in proposal.upgrades
        ]
        _table(console, "Upgrades", ("package", "from", "to", "why"), rows, wide)
    if proposal.blocked:
        rows = [
            (item.package, item.current or "", item.why, ", ".join(r.id for r in item.reasons))
            for item in proposal.blocked
        ]
        headings = ("package", "pinned", "why it cannot move", "asked by")
        _table(console, "Blocked: needs a person or the planner", headings, rows, wide)
    diff = proposal.diff()
    if diff:
        console.print(escape(diff), highlight=False, soft_wrap=True)


def _table(
    console: Console,
    title: str,
    headings: Sequence[str],
    rows: Sequence[Sequence[str]],
    wide: bool,
) -> None:
    if wide:
        console.print(escape(f"{title}:\n{plain_table(headings, rows)}"), soft_wrap=True)
        return
    table = Table(title=title, title_justify="left")
    for heading in headings:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)


def report_as_dict(report: HealthReport) -> dict[str, Any]:
    return {
        "product": report.product_id,
        "checked_on": report.checked_on.isoformat(),
        "advisory_source": report.advisory_source,
        "runtime": {
            "runtime": report.runtime.runtime,
            "status": report.runtime.status,
            "end_of_life": report.runtime.end_of_life.isoformat()
            if report.runtime.end_of_life
            else None,
        },
        "files": list(report.files),
        "pins": [_pin_dict(item) for item in report.pins],
        "problems": [
            {"file": problem.file, "line": problem.line, "reason": problem.reason}
            for problem in report.problems
        ],
    }


def _pin_dict(item: PinHealth) -> dict[str, Any]:
    return {
        "package": item.pin.name,
        "file": item.pin.file,
        "line": item.pin.line,
        "specifier": str(item.pin.specifier),
        "pinned": item.current,
        "latest": item.latest,
        "released_at": item.released_at.isoformat() if item.released_at else None,
        "age_days": item.age_days,
        "yanked": item.yanked,
        "fixed_in": item.fixed_in,
        "advisories": [
            {
                "id": advisory.id,
                "aliases": list(advisory.aliases),
                "severity": advisory.severity,
                "fixed_versions": list(advisory.fixed_versions),
                "summary": advisory.summary,
            }
            for advisory in item.advisories
        ],
        "notes": list(item.notes),
    }
