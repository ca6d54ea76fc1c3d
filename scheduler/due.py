"""Pure scheduling decisions: when a window opens and which products are due in it.

A window is an ISO week (``2026-W48``). The organisation's schedule is a cron expression in a
time zone (``SPECFLEET_WINDOW_CRON``, ``SPECFLEET_TIMEZONE``); its first firing inside a week is
that week's *tick*, and a product is due once its tick has passed and it has no weekly
evaluation in the window yet. A product may override the schedule (another cron expression,
or ``paused``): an override that never fires inside a week (say, monthly) skips that week.

Nothing here reads a clock, a database or the settings: callers pass them in, so every
decision is a function of its arguments and tested as such.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from specfleet.core.errors import ConfigurationError
from specfleet.core.windows import iso_week, week_start

PAUSED = "paused"
# Rows in these states will still run; a product that has one is covered for the window.
PENDING_STATUSES = frozenset({"queued", "running"})

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as cron has it
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse ``expression``; ConfigurationError names the field that is wrong."""
        parts = expression.split()
        if len(parts) != 5:
            raise ConfigurationError(
                f"schedule {expression!r} must have 5 fields "
                f"(minute hour day-of-month month day-of-week), it has {len(parts)}"
            )
        values = [
            _parse_field(part, name, low, high, expression)
            for part, (name, low, high) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = frozenset(0 if day == 7 else day for day in values[4])
        return cls(
            expression=expression,
            minutes=values[0],
            hours=values[1],
            days=values[2],
            months=values[3],
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def fires_on(self, day: dt.date) -> bool:
        """Whether the expression fires at some time of ``day`` (cron's day rules)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            # cron: when both are restricted, either one matching is enough
            return in_days or in_weekdays
        return in_days and in_weekdays

    def first_tick_in_week(self, window: str, zone: dt.tzinfo) -> dt.datetime | None:
        """The first moment the expression fires inside ``window`` (aware, in UTC), or None."""
        monday = week_start(window)
        for offset in range(7):
            day = monday + dt.timedelta(days=offset)
            if self.fires_on(day):
                local = dt.datetime.combine(
                    day, dt.time(min(self.hours), min(self.minutes)), tzinfo=zone
                )
                return local.astimezone(dt.UTC)
        return None


def _parse_field(part: str, name: str, low: int, high: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, stop = low, high
            elif "-" in base:
                first, _, last = base.partition("-")
                start, stop = int(first), int(last)
            else:
                start = int(base)
                stop = high if step_text else start
        except ValueError:
            raise ConfigurationError(
                f"schedule {expression!r}: {name} field {part!r} is not a number, range, "
                "list or step"
            ) from None
        if step < 1 or not (low <= start <= stop <= high):
            raise ConfigurationError(
                f"schedule {expression!r}: {name} field {part!r} is outside {low}-{high}"
            )
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def zone_named(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"unknown time zone {name!r} (SPECFLEET_TIMEZONE)") from None


@dataclass(frozen=True)
class Schedule:
    """The organisation's weekly schedule plus per-product overrides."""

    default: Cron
    zone: dt.tzinfo
    overrides: Mapping[str, Cron | None]  # None: paused

    @classmethod
    def from_config(
        cls, cron: str, timezone: str, overrides: Mapping[str, str] | None = None
    ) -> Schedule:
        parsed: dict[str, Cron | None] = {}
        for product_id, expression in (overrides or {}).items():
            parsed[product_id] = (
                None if expression.strip().lower() == PAUSED else Cron.parse(expression)
            )
        return cls(Cron.parse(cron), zone_named(timezone), parsed)

    def window_at(self, moment: dt.datetime) -> str:
        """The window (ISO week in the schedule's time zone) that ``moment`` falls in."""
        return iso_week(moment.astimezone(self.zone).date())

    def tick(self, product_id: str, window: str) -> dt.datetime | None:
        """When ``product_id`` becomes due in ``window``; None when it is not due that week."""
        cron = self.overrides.get(product_id, self.default)
        if cron is None:
            return None
        return cron.first_tick_in_week(window, self.zone)


@dataclass(frozen=True)
class ProductFacts:
    """What the due decision needs to know about a registered product."""

    product_id: str
    active: bool = True


@dataclass(frozen=True)
class WindowEvaluation:
    """An evaluation that already exists in the window."""

    product_id: str
    trigger: str
    status: str


@dataclass(frozen=True)
class DueDecision:
    product_id: str
    due: bool
    reason: str


def decide_due(
    products: Iterable[ProductFacts],
    existing: Iterable[WindowEvaluation],
    schedule: Schedule,
    window: str,
    now: dt.datetime | None,
) -> list[DueDecision]:
    """For each product, whether a weekly evaluation must be queued in ``window``.

    ``now=None`` means "as of the end of the window" (a manual ``run-window``): every product
    whose schedule fires that week is due, however early in the week it is.
    """
    weekly_done: set[str] = set()
    pending: set[str] = set()
    for row in existing:
        if row.trigger == "weekly":
            weekly_done.add(row.product_id)
        if row.status in PENDING_STATUSES:
            pending.add(row.product_id)
    decisions = []
    for product in products:
        pid = product.product_id
        if not product.active:
            decisions.append(DueDecision(pid, False, "removed from the registry"))
            continue
        if pid in weekly_done:
            decisions.append(DueDecision(pid, False, "already evaluated this window"))
            continue
        if pid in pending:
            decisions.append(DueDecision(pid, False, "an evaluation is already queued"))
            continue
        tick = schedule.tick(pid, window)
        if tick is None:
            reason = (
                "paused"
                if schedule.overrides.get(pid, schedule.default) is None
                else ("its schedule does not fire this week")
            )
            decisions.append(DueDecision(pid, False, reason))
            continue
        if now is not None and now < tick:
            decisions.append(DueDecision(pid, False, f"due at {tick.isoformat()}"))
            continue
        decisions.append(DueDecision(pid, True, "due"))
    return decisions


def due_product_ids(decisions: Iterable[DueDecision]) -> list[str]:
    return [decision.product_id for decision in decisions if decision.due]
