"""Server-rendered SVG charts (no JavaScript): a rule's rollout across the fleet, week by week.

Modelled on Sourcegraph Batch Changes' burndown: one line per status (passing, failing,
unknown) over ISO weeks, so an architect sees a rule being adopted.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from specfleet.policies.compliance import RolloutWeek

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 48
SERIES = (("passing", "#2e7d32"), ("failing", "#c62828"), ("unknown", "#9e9e9e"))


def rollout_svg(weeks: Sequence[RolloutWeek], title: str) -> Markup:
    """An inline SVG line chart of passing/failing/unknown products per week."""
    label = escape(title)
    if not weeks:
        return Markup(  # noqa: S704 - the only text in it is escaped
            f'<svg role="img" aria-label="{label}" width="{WIDTH}" height="60" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="8" y="30">No weeks to show.</text></svg>'
        )
    peak = max(max(week.passing, week.failing, week.unknown) for week in weeks) or 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(weeks) - 1, 1)

    def x(index: int) -> float:
        return LEFT + (index * step if len(weeks) > 1 else plot_w / 2)

    def y(value: int) -> float:
        return TOP + plot_h - value / peak * plot_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{label}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#555"/>',
    ]
    for tick in sorted({0, peak // 2, peak}):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{tick}</text>'
        )
    every = max(1, len(weeks) // 8)
    for index, week in enumerate(weeks):
        if index % every == 0 or index == len(weeks) - 1:
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="11">{escape(week.window)}</text>'
            )
    for name, colour in SERIES:
        values = [getattr(week, name) for week in weeks]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline class="series-{name}" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{points}"/>'
        )
        for i, value in enumerate(values):
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(weeks[i].window)}: {value} {name}</title></circle>"
            )
    for position, (name, colour) in enumerate(SERIES):
        left = LEFT + position * 110
        parts.append(
            f'<rect x="{left}" y="{HEIGHT - 18}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + 14}" y="{HEIGHT - 9}" font-size="12">{name}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text node above is escaped
