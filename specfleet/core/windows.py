"""Evaluation windows: ISO weeks such as ``2026-W48``."""

from __future__ import annotations

import datetime as dt
import re

WINDOW_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_start(window: str) -> dt.date:
    """The Monday a window starts on; ValueError for a malformed window."""
    match = WINDOW_PATTERN.match(window)
    if match is None:
        raise ValueError(f"{window!r} is not an ISO week such as 2026-W48")
    return dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)


def weeks_between(first: dt.date, last: dt.date) -> list[str]:
    """Every ISO week from the one holding ``first`` to the one holding ``last``."""
    start = first - dt.timedelta(days=first.weekday())
    weeks = []
    while start <= last:
        weeks.append(iso_week(start))
        start += dt.timedelta(days=7)
    return weeks
